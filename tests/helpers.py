import json
import os

from click.testing import CliRunner

from mwconv.cli import main


def run_cli(*args):
    """Run the CLI in-process; return (exit_code, stdout, stderr)."""
    runner = CliRunner()
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="mwconv")
    return result.exit_code, result.stdout, result.stderr


def run_json(*args):
    code, out, err = run_cli("--json", *args)
    return code, json.loads(out), err


def listing(folder):
    return sorted(os.listdir(folder))
