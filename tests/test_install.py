"""mwconv installs and works on another supported Python: a fresh virtual environment,
`pip install -c constraints.txt .`, then the command line end to end."""

import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _other_python():
    """A Python 3.10-3.13 other than this one: $MWCONV_TEST_PYTHON, else 3.12, 3.13, 3.10."""
    if os.environ.get("MWCONV_TEST_PYTHON"):
        return os.environ["MWCONV_TEST_PYTHON"]
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    for version in ("3.12", "3.13", "3.10"):
        if version == mine:
            continue
        candidates = glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))
        candidates += [p for p in (shutil.which(f"python{version}"),) if p]
        for path in candidates:
            ok = subprocess.run([path, "-c", "import sys, venv; print(sys.version_info[:2])"], capture_output=True,
                                text=True)
            if ok.returncode == 0:
                return path
    return None


def _run(args, cwd, timeout=900):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_install_and_run_on_another_python(tmp_path):
    python = _other_python()
    if python is None:
        pytest.skip("no other Python 3.10-3.13 is installed (set MWCONV_TEST_PYTHON=/path/to/python3.x)")
    version = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], tmp_path).strip()
    venv = tmp_path / "venv"
    _run([python, "-m", "venv", str(venv)], tmp_path)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], tmp_path)
    src = tmp_path / "src"          # a copy, so the build leaves nothing in the checkout
    shutil.copytree(os.path.join(ROOT, "mwconv"), src / "mwconv", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "constraints.txt", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(src / "constraints.txt"),
          str(src)], tmp_path, timeout=1500)
    mwconv = str(venv / "bin" / "mwconv")
    assert _run([mwconv, "--version"], tmp_path).strip() == "mwconv, version 0.1.0"
    work = tmp_path / "work"
    work.mkdir()
    _run([mwconv, "fixtures", "samples"], work)
    shutil.copy(work / "samples" / "tfkeras2_full.h5", work / "weights.h5")
    _run([mwconv, "import", "weights.h5", "--train", "head/*"], work)
    out = _run([mwconv, "export", "--format", "saved_model"], work)
    assert "all checks passed" in out
    out = _run([mwconv, "verify", "weights_saved_model", "--reference", "weights.keras"], work)
    assert "✓ partition  11 weights (9 frozen, 2 trainable)" in out and "✓ source" in out, out
    info = _run([str(venv / "bin" / "python"), "-c", "import sys, keras, tensorflow; "
                 "print('%d.%d' % sys.version_info[:2], keras.__version__, tensorflow.__version__)"], work)
    assert info.split()[0] == version
