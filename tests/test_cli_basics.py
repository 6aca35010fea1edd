import json
import subprocess
import sys

import pytest

import mwconv
from tests.helpers import run_cli

HEAVY = ["tensorflow", "keras", "onnx", "tf2onnx", "onnxruntime", "tf_keras"]
PROBE = """
import sys
from mwconv.cli import main
sys.argv = ["mwconv"] + sys.argv[1:]
try:
    main()
except SystemExit:
    pass
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print("HEAVY=" + ",".join(loaded), file=sys.stderr)
""" % (HEAVY,)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["inspect", "--help"], ["fixtures", "--help"], ["import", "--help"], ["export", "--help"], ["verify", "--help"], ["run", "--help"]])
def test_help_and_version_import_no_framework(args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    heavy = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], proc.stderr
    assert proc.stdout.strip()


def test_version():
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"mwconv, version {mwconv.__version__}"


@pytest.mark.parametrize("command", ["inspect", "fixtures", "import", "export", "verify", "run"])
def test_every_command_help_has_examples_and_exit_codes(command):
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    assert "Examples:" in out and f"mwconv {command}" in out
    for exit_code in ("0", "1", "2", "3", "4", "130"):
        assert f" {exit_code:>3}  " in out


def test_top_level_help_lists_commands_and_exit_codes():
    code, out, _ = run_cli("--help")
    assert code == 0 and "inspect" in out and "fixtures" in out and "input rejected" in out


def test_usage_error_exits_2():
    code, _, err = run_cli("inspect")
    assert code == 2 and "Missing argument" in err
    code, _, err = run_cli("nosuchcommand")
    assert code == 2


def test_console_script_runs_without_traceback(tmp_path):
    missing = tmp_path / "missing.h5"
    proc = subprocess.run([sys.executable, "-m", "mwconv.cli", "--json", "inspect", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"mwconv: error: {missing}: no such file or directory"
    doc = json.loads(proc.stdout)
    assert doc == {"ok": False, "exit_code": 3, "error": f"{missing}: no such file or directory",
                   "file": str(missing), "tensor": None}
