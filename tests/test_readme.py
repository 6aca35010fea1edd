"""Every command and Python snippet of the README runs as written."""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md"), encoding="utf8") as _f:
    README = _f.read()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, re.S)
SETUP = [b for lang, b in BLOCKS if "scripts/" in b]
COMMANDS = [line for lang, b in BLOCKS if lang == "bash" and "scripts/" not in b
            for line in b.strip().splitlines()]
SNIPPETS = [b for lang, b in BLOCKS if lang == "python"]


def test_setup_block_is_the_two_commands_and_ci_runs_the_test_one():
    assert len(SETUP) == 1
    lines = [line.split("#")[0].strip() for line in SETUP[0].strip().splitlines()]
    assert lines == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf8") as f:
        assert "bash scripts/test.sh" in f.read()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, samples):
    """A folder with the examples and, for the card's two commands, a tf.keras 2.x weights.h5."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(os.path.join(ROOT, "examples"), folder / "examples")
    shutil.copy(samples / "tfkeras2_full.h5", folder / "weights.h5")
    return folder


def _env():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


@pytest.mark.slow
def test_readme_commands_and_snippets(sandbox):
    assert COMMANDS[:2] == ["mwconv import weights.h5                  # a tf.keras 2.x model.save() file -> "
                            "weights.keras, all frozen",
                            "mwconv export --format saved_model        # the last import -> weights_saved_model/, "
                            "verified"]
    assert len(COMMANDS) >= 15 and len(SNIPPETS) == 5
    for line in COMMANDS:
        proc = subprocess.run(line, shell=True, cwd=sandbox, env=_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    for snippet in SNIPPETS:
        proc = subprocess.run([sys.executable, "-c", snippet], cwd=sandbox, env=_env(), capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sandbox / "verify.json").exists() and (sandbox / "build" / "torch" / "serving").exists()
    assert (sandbox / "weights.keras").is_file() and (sandbox / "weights_saved_model" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_demo_script_runs_the_main_job():
    """The README's main-job command, as written (its venv step finds .venv ready in CI)."""
    if not os.path.exists(os.path.join(ROOT, ".venv", "bin", "python")):
        pytest.skip("runs where scripts/test.sh made .venv/")
    proc = subprocess.run(["bash", "scripts/demo.sh", "--json", "-q"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and len(doc["pipelines"][0]["verify"]) == 3
