"""Writers that overlap: without --force exactly one of several concurrent writers of one
target wins and the others exit 4; with --force the target is always one whole artifact; no
staging folder is left behind either way."""

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRITER = """
import os, sys, time
from mwconv.errors import OutputRefused
from mwconv.outputs import atomic_output
target, force, folder, start = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", float(sys.argv[4])
try:
    with atomic_output(target, force=force, directory=folder) as tmp:
        if folder:
            for i in range(3):
                with open(os.path.join(tmp, f"part{i}"), "w") as f:
                    f.write(str(os.getpid()))
        else:
            with open(tmp, "w") as f:
                f.write(str(os.getpid()) * 1000)
        time.sleep(max(0.0, start - time.time()))     # every writer commits at the same moment
except OutputRefused as e:
    print(e)
    sys.exit(4)
"""


def _race(args_for, count):
    procs = [subprocess.Popen(args_for(i), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(count)]
    return [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]


def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.endswith(".mwconv-tmp")]


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
@pytest.mark.parametrize("force", [False, True], ids=["no-force", "force"])
def test_concurrent_commits(tmp_path, as_folder, force):
    target = tmp_path / "artifact"
    start = time.time() + 5          # after every process has started and staged (a loaded machine too)
    results = _race(lambda i: [sys.executable, "-c", WRITER, str(target), "1" if force else "0",
                               "1" if as_folder else "0", str(start)], 4)
    codes = sorted(code for code, _, _ in results)
    if force:
        assert codes == [0, 0, 0, 0], results
    else:
        assert codes == [0, 4, 4, 4], results
        assert all("already exists (another run wrote it meanwhile); pass --force to replace it" in out
                   for code, out, _ in results if code == 4)
    # one whole artifact, written by one process
    if as_folder:
        parts = {(target / f"part{i}").read_text() for i in range(3)}
        assert len(parts) == 1 and sorted(os.listdir(target)) == ["part0", "part1", "part2"]
    else:
        text = target.read_text()
        assert text == text[: len(text) // 1000] * 1000, "the file mixes two writers' bytes"
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("fmt,name", [("keras", "same.keras"), ("saved_model", "serving"), ("onnx", "same.onnx")])
def test_concurrent_exporters_of_one_target(tmp_path, samples, fmt, name):
    model = tmp_path / "m.keras"
    assert run_cli("import", samples / "tfkeras2_full.h5", "--train", "head/*", "-o", model)[0] == 0
    out = tmp_path / name
    results = _race(lambda i: [sys.executable, "-m", "mwconv.cli", "export", str(model), "--format", fmt,
                               "-o", str(out), "-q"], 3)
    codes = sorted(code for code, _, _ in results)
    # a writer that starts after the winner committed is refused by the first check, one that
    # overlaps by the commit: either way exactly one wins
    assert codes == [0, 4, 4], [(c, e[-300:]) for c, _, e in results]
    code, _, err = run_cli("verify", out, "--reference", model, "--checks", "partition,outputs")
    assert code == 0, err
    assert _leftovers(tmp_path) == [] and not [n for n in os.listdir(tmp_path) if n.endswith(".data")]


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "link-fallback"])
@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
def test_a_target_that_appears_meanwhile_is_never_replaced(tmp_path, monkeypatch, renameat2, as_folder):
    """Deterministic: another writer's artifact appears between the up-front check and the commit."""
    from mwconv import outputs
    from mwconv.errors import OutputRefused

    if not renameat2:
        monkeypatch.setattr(outputs, "_renameat2", lambda src, dst, flags: False)
    target = tmp_path / "artifact"
    with pytest.raises(OutputRefused, match="already exists \\(another run wrote it meanwhile\\)"):
        with outputs.atomic_output(target, directory=as_folder) as tmp:
            (open(tmp, "w") if not as_folder else open(os.path.join(tmp, "mine"), "w")).close()
            if as_folder:
                target.mkdir()
                (target / "theirs").write_text("theirs")
            else:
                target.write_text("theirs")
    assert (target / "theirs" if as_folder else target).read_text() == "theirs"
    assert _leftovers(tmp_path) == []
    # with force it is replaced, whole
    with outputs.atomic_output(target, force=True, directory=as_folder) as tmp:
        if as_folder:
            with open(os.path.join(tmp, "mine"), "w") as f:
                f.write("mine")
        else:
            with open(tmp, "w") as f:
                f.write("mine")
    assert (sorted(os.listdir(target)) == ["mine"]) if as_folder else target.read_text() == "mine"
    assert _leftovers(tmp_path) == []


ONNX_WRITER = """
import os, signal, sys
import mwconv.outputs as outputs
from mwconv.convert import exporter
from mwconv.formats import onnx_file
onnx_file.ONNX_EXTERNAL_THRESHOLD = 0                    # external data, on a small model
source, target, force, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
commit = outputs._commit
def killing_commit(staged, final, stage_root, force=False):
    if kill and final.endswith(".onnx"):                 # the data file is committed; the model is next
        os.kill(os.getpid(), signal.SIGKILL)
    return commit(staged, final, stage_root, force)
outputs._commit = killing_commit
exporter.export(source, "onnx", target, force=force, verify=False)
"""


def _onnx_outputs(path, x):
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _export_onnx(source, target, force, kill):
    return subprocess.run([sys.executable, "-c", ONNX_WRITER, str(source), str(target), "1" if force else "0",
                           "1" if kill else "0"], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("force", [False, True], ids=["new-target", "force"])
def test_a_kill_between_the_onnx_data_and_model_commits(tmp_path, force):
    """The model always points at the data written with it: killed after its data file was
    committed, a run leaves the previous model and its data untouched, and the next run
    removes what the killed one left."""
    import keras
    import numpy as np
    import onnx

    from mwconv.formats.onnx_data import referenced_data

    inp = keras.Input((8,), name="x")
    keras.Model(inp, keras.layers.Dense(4, name="d")(inp)).save(tmp_path / "m.keras")
    keras.Model(inp, keras.layers.Dense(4, name="d")(inp)).save(tmp_path / "other.keras")   # other weights
    target, x = tmp_path / "out" / "model.onnx", np.ones((2, 8), np.float32)
    (tmp_path / "out").mkdir()
    if force:
        assert _export_onnx(tmp_path / "m.keras", target, False, False).returncode == 0
        before = {n: (tmp_path / "out" / n).read_bytes() for n in os.listdir(tmp_path / "out")}
        expected = _onnx_outputs(target, x)
    killed = _export_onnx(tmp_path / "other.keras", target, force, True)
    assert killed.returncode == -9, killed.stderr
    names = sorted(os.listdir(tmp_path / "out"))
    data = [n for n in names if n.endswith(".data")]
    if force:
        assert len(data) == 2                        # the previous model's data and the killed run's
        assert all((tmp_path / "out" / n).read_bytes() == b for n, b in before.items())
        np.testing.assert_array_equal(_onnx_outputs(target, x), expected)
    else:
        assert not target.exists() and len(data) == 1
    rerun = _export_onnx(tmp_path / "m.keras", target, True, False)
    assert rerun.returncode == 0, rerun.stderr
    files = sorted(os.listdir(tmp_path / "out"))
    assert len(files) == 2 and "model.onnx" in files, files
    assert referenced_data(target) == {str(tmp_path / "out" / n) for n in files if n.endswith(".data")}
    onnx.checker.check_model(str(target))
    np.testing.assert_allclose(_onnx_outputs(target, x), keras.saving.load_model(tmp_path / "m.keras")(x), atol=1e-5)
