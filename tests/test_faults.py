"""Interrupting a real export of about 200 MiB at several moments, by SIGINT, SIGTERM and
SIGKILL: the output is absent or complete, nothing is left behind (after the next run, for
SIGKILL), and a signal is a clean exit (130 for SIGINT, 143 for SIGTERM)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

MWCONV = os.path.join(os.path.dirname(sys.executable), "mwconv")
MOMENTS = (0.25, 0.55, 0.85)          # fractions of a full export's time


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A .keras model of 200 MiB of weights, and how long a full export of it takes here."""
    import keras

    folder = tmp_path_factory.mktemp("faults")
    inp = keras.Input((3200,), name="x")
    h = inp
    for i in range(5):                                  # 5 x 3200 x 3200 float32 = 195 MiB
        h = keras.layers.Dense(3200, name=f"d{i}")(h)
    keras.Model(inp, h).save(folder / "large.keras")
    start = time.monotonic()
    proc = subprocess.run([MWCONV, "export", str(folder / "large.keras"), "--format", "saved_model", "-o",
                           str(folder / "reference_export"), "-q"], capture_output=True, text=True, timeout=900,
                          env=_env(folder))
    assert proc.returncode == 0, proc.stderr
    return folder, time.monotonic() - start


def _env(folder):
    return dict(os.environ, TMPDIR=str(folder))          # private run folders land where the test can see them


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".mwconv-tmp") or n.startswith("mwconv-run-"))


def _complete(folder, out):
    proc = subprocess.run([MWCONV, "verify", str(out), "--reference", str(folder / "large.keras"), "--checks",
                           "partition"], capture_output=True, text=True, timeout=900,
                          env=_env(folder))
    return proc.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_export_leaves_nothing_partial(signum, large):
    """Each moment is a fraction of the export's measured time. On a loaded machine an export
    may run faster than when it was measured (another test finished meanwhile) and end before
    the signal: that moment is tried again earlier, up to three times."""
    folder, duration = large
    interrupted = 0
    for i, moment in enumerate(MOMENTS):
        for attempt in range(4):
            out = folder / f"out_{signum.name}_{i}_{attempt}"
            finished = _signal_one_export(signum, folder, out, duration * moment * 0.5 ** attempt)
            if not finished:
                interrupted += 1
                break
    assert interrupted >= 2, f"only {interrupted} of {len(MOMENTS)} runs were interrupted: the moments miss the export"


def _signal_one_export(signum, folder, out, delay):
    """Signal a real export after ``delay`` seconds and check what it leaves; True when the
    export had already finished."""
    proc = subprocess.Popen([MWCONV, "export", str(folder / "large.keras"), "--format", "saved_model", "-o",
                             str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(folder))
    time.sleep(delay)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=900)
    finished = proc.returncode == 0                   # the export may have ended before the signal
    if not finished:
        expected = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}[signum]
        assert proc.returncode == expected, err
    if signum != signal.SIGKILL and not finished:
        assert err.strip().splitlines()[-1] == f"mwconv: interrupted ({signum.name})"
        assert _leftovers(folder) == []
    assert not out.exists() or _complete(folder, out), f"{out} is partial"
    # the next run that writes the same output sweeps what a killed run left, and succeeds
    rerun = subprocess.run([MWCONV, "export", str(folder / "large.keras"), "--format", "saved_model", "-o",
                            str(out), "-q", "--force", "--no-verify"], capture_output=True, text=True,
                           timeout=900, env=_env(folder))
    assert rerun.returncode == 0, rerun.stderr
    assert _leftovers(folder) == [] and _complete(folder, out)
    shutil.rmtree(out)                                # 195 MiB each: the disk holds one at a time
    return finished
