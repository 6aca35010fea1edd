"""Progress bars: on stderr under a terminal for work above the threshold; never
under --json or when stderr is not a terminal."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

MWCONV = os.path.join(os.path.dirname(sys.executable), "mwconv")


def _run(args, cwd, terminal, threshold=1 << 20):
    """Run the real command line; stderr to a pseudo-terminal or a pipe. Returns (code, stdout, stderr)."""
    env = dict(os.environ, MWCONV_PROGRESS_MIN_BYTES=str(threshold), COLUMNS="120")
    if not terminal:
        proc = subprocess.run([MWCONV, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))   # a 120-column terminal
    proc = subprocess.Popen([MWCONV, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:   # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode()
    code = proc.wait(timeout=300)
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    np.save(folder / "big.npy", np.ones((1 << 20,), np.float32))     # 4 MiB
    return folder


def test_bar_under_a_terminal(big):
    code, out, err = _run(["inspect", "big.npy", "--hash"], big, terminal=True)
    assert code == 0
    assert "mwconv: hashing 1 tensors:" in err and "%|" in err
    assert "4.00M" in err             # counted in bytes (tqdm's binary units)
    assert "sha256" in out            # the table itself still goes to stdout


def test_no_bar_under_json_even_in_a_terminal(big):
    code, out, err = _run(["--json", "inspect", "big.npy", "--hash"], big, terminal=True)
    assert code == 0 and json.loads(out)["totals"]["bytes"] == 4 << 20
    assert "%|" not in err and "hashing" not in err


def test_no_bar_when_stderr_is_not_a_terminal(big):
    code, _, err = _run(["inspect", "big.npy", "--hash"], big, terminal=False)
    assert code == 0 and err == ""


def test_no_bar_below_the_threshold(big):
    code, _, err = _run(["inspect", "big.npy", "--hash"], big, terminal=True, threshold=64 << 20)
    assert code == 0 and "%|" not in err


@pytest.mark.slow
def test_import_and_export_show_bars(samples, tmp_path):
    code, _, err = _run(["import", samples / "tfkeras2_full.h5", "-o", "m.keras"], tmp_path, terminal=True,
                        threshold=0)
    assert code == 0, err
    assert "mwconv: importing" in err and "mwconv: hashing" in err
    code, _, err = _run(["export", "--format", "safetensors"], tmp_path, terminal=True, threshold=0)
    assert code == 0, err
    assert "mwconv: writing safetensors:" in err and "%|" in err
    # one pass over the weights, shared by the manifest and the export's check: one hashing bar
    assert err.count("mwconv: hashing") == 1, err
