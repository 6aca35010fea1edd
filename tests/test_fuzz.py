"""Fuzzing: valid fixtures of every format, mutated (truncated, bytes flipped, headers
overwritten), fed to `inspect --hash` and `import`. Each must succeed or be refused with
exit 3 in one line; an untyped exception (the last-resort "unexpected" line, exit 1) or any
other exit code fails. MWCONV_FUZZ_EXAMPLES raises the count (CI runs the default).

The mutated files are written by the test and read in a child process, so a crash in a
C library (h5py, onnx, TensorFlow) fails the test with its output instead of killing pytest.
"""

import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = int(os.environ.get("MWCONV_FUZZ_EXAMPLES", "60"))
FILES = ["tfkeras2_full.h5", "keras3.weights.h5", "tfkeras2_weights.h5", "torch_state_dict.npz",
         "torch_state_dict_compressed.npz", "fc1_weight.npy", "mlp_opset9.onnx", "keras3_model.keras",
         "torch_state_dict.safetensors"]

# One child process runs every command of an example, in-process (CliRunner): fast, and
# isolated from pytest. It prints one JSON line per command: [exit code, stderr].
RUNNER = """
import json, sys
from click.testing import CliRunner
from mwconv.cli import main
path, model, out = sys.argv[1:4]
for args in (["inspect", "--hash", path],
             ["import", path, "--model", model, "--allow-missing", "--allow-unused", "-o", out, "--force"]):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    print(json.dumps([result.exit_code, result.stderr]), flush=True)
"""


def _mutate(raw, kind, position, value):
    position %= max(len(raw), 1)
    if kind == "truncate":
        return raw[:position]
    if kind == "flip":
        raw[position] ^= value or 0xFF
        return raw
    head = min(len(raw), 512)                        # overwrite a byte of the header region
    raw[position % max(head, 1)] = value
    return raw


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(FILES), kind=st.sampled_from(["truncate", "flip", "header"]),
       position=st.integers(min_value=0, max_value=1 << 20), value=st.integers(min_value=0, max_value=255))
@example(name="fc1_weight.npy", kind="header", position=60, value=0x2D)          # found: tokenize.TokenError
@example(name="mlp_opset9.onnx", kind="truncate", position=100, value=0)
@example(name="torch_state_dict.safetensors", kind="header", position=9, value=0x5B)
@example(name="keras3.weights.h5", kind="flip", position=120, value=0)           # found: h5py RuntimeError
@example(name="torch_state_dict_compressed.npz", kind="flip", position=245, value=0)   # found: zlib.error
def test_mutated_files_are_read_or_refused(name, kind, position, value, samples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    raw = bytearray((samples / name).read_bytes())
    path = folder / name
    path.write_bytes(bytes(_mutate(raw, kind, position, value)))
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(samples / "keras3_model.keras"),
                           str(folder / "out.keras")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"{name} {kind}@{position}={value}: the child died\n{proc.stderr[-3000:]}"
    for line in proc.stdout.strip().splitlines():
        code, err = json.loads(line)
        assert code in (0, 3), f"{name} {kind}@{position}={value}: exit {code}: {err}"
        assert "unexpected" not in err and "Traceback" not in err, err
        assert code == 0 or err.count("\n") == 1, err
