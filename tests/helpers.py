import json
import os

from click.testing import CliRunner

from mwconv.cli import main


def run_cli(*args):
    """Run the CLI in-process; return (exit_code, stdout, stderr)."""
    try:
        runner = CliRunner(mix_stderr=False)       # Click 8.1: stderr apart only when asked
    except TypeError:
        runner = CliRunner()                       # Click 8.2 and later: always apart
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="mwconv")
    return result.exit_code, result.stdout, result.stderr


def run_json(*args):
    code, out, err = run_cli("--json", *args)
    return code, json.loads(out), err


def listing(folder):
    return sorted(os.listdir(folder))
