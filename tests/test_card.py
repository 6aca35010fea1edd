"""The project card's commands as written, their defaults, and mwconv.load_model."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import run_cli, run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def folder(samples, tmp_path, monkeypatch):
    """A fresh folder holding a tf.keras 2.x full-model file named weights.h5, as the card says."""
    shutil.copy(samples / "tfkeras2_full.h5", tmp_path / "weights.h5")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_cards_two_commands(folder):
    code, out, err = run_cli("import", "weights.h5")
    assert code == 0, err
    assert "mwconv: no -o given: writing weights.keras" in err
    assert out.strip().endswith(f"wrote {folder / 'weights.keras'}")
    state = json.loads((folder / ".mwconv-state.json").read_text())
    assert state["last_import"] == str(folder / "weights.keras")
    assert state["source"] == str(folder / "weights.h5")

    code, out, err = run_cli("export", "--format", "saved_model")
    assert code == 0, err
    assert "mwconv: exporting weights.keras (written by the last `mwconv import` in this folder)" in err
    assert "mwconv: no -o given: writing weights_saved_model" in err
    assert (folder / "weights_saved_model" / "saved_model.pb").is_file()
    assert "all checks passed" in out


@pytest.mark.parametrize("fmt, name", [("keras", "weights_keras.keras"), ("onnx", "weights_onnx.onnx"),
                                       ("weights_h5", "weights_weights_h5.weights.h5"),
                                       ("safetensors", "weights_safetensors.safetensors")])
def test_export_default_output_names(folder, fmt, name):
    assert run_cli("import", "weights.h5")[0] == 0
    code, doc, _ = run_json("export", "--format", fmt)
    assert code == 0 and doc["ok"] is True
    assert doc["path"] == str(folder / name) and (folder / name).exists()


def test_export_without_model_or_state_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("export", "--format", "keras")
    assert code == 2 and out == ""
    assert err == ("mwconv: error: no MODEL given and no `mwconv import` has run in this folder; pass MODEL "
                   "(a .keras file)\n")
    assert os.listdir(tmp_path) == []


def test_state_naming_a_removed_model_is_a_usage_error(folder):
    assert run_cli("import", "weights.h5")[0] == 0
    os.remove("weights.keras")
    code, _, err = run_cli("export", "--format", "keras")
    assert code == 2
    assert f"the last import recorded here, {folder / 'weights.keras'}, no longer exists; pass MODEL" in err


def test_default_import_output_is_not_replaced_without_force(folder):
    assert run_cli("import", "weights.h5")[0] == 0
    before = (folder / "weights.keras").read_bytes()
    code, _, err = run_cli("import", "weights.h5")
    assert code == 4 and "already exists; pass --force to replace it" in err
    assert (folder / "weights.keras").read_bytes() == before
    assert run_cli("import", "weights.h5", "--force")[0] == 0


def test_import_of_a_keras_file_never_defaults_onto_itself(samples, tmp_path, monkeypatch):
    shutil.copy(samples / "keras3_model.keras", tmp_path / "model.keras")
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "model.keras").read_bytes()
    code, _, err = run_cli("import", "model.keras", "--force")
    assert code == 2
    assert "the default output model.keras is the source itself; pass -o OUT.keras" in err
    assert (tmp_path / "model.keras").read_bytes() == before


LOAD_SCRIPT = """
import sys
import mwconv
assert "keras" not in sys.modules and "tensorflow" not in sys.modules, "import mwconv must stay cheap"
model = mwconv.load_model(sys.argv[1])
import numpy as np
io = np.load(sys.argv[2])
feed = {k[len("input:"):]: io[k] for k in io.files if k.startswith("input:")}
np.save(sys.argv[3], np.asarray(model(feed, training=False)))
print(type(model).__name__, [w.path for w in model.trainable_weights])
"""


def test_load_model_after_a_bare_import(samples, tmp_path):
    assert run_cli("import", samples / "tfkeras2_full.h5", "--train", "head/*", "-o", tmp_path / "m.keras")[0] == 0
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "m.keras"),
                           str(samples / "tfkeras2_full.io.npz"), str(tmp_path / "out.npy")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "Functional ['head/kernel', 'head/bias']"
    want = np.load(samples / "tfkeras2_full.io.npz")["output:head"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=1e-5, atol=1e-6)


def test_plain_keras_load_needs_mwconv_layers_imported(samples, tmp_path):
    """What the README says: keras.saving.load_model works after `import mwconv.layers`."""
    assert run_cli("import", samples / "tfkeras2_full.h5", "-o", tmp_path / "m.keras")[0] == 0
    script = ("import sys, keras\nimport mwconv.layers\nm = keras.saving.load_model(sys.argv[1])\n"
              "print(sorted({type(l).__module__.split('.')[0] for l in m.layers}))")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.keras")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "['keras', 'mwconv']"


def test_load_model_refuses_what_is_not_a_keras_file(samples):
    import mwconv
    from mwconv.errors import UsageError

    with pytest.raises(UsageError) as err:
        mwconv.load_model(samples / "keras3_saved_model")
    assert str(err.value).endswith("load_model reads .keras files; this is saved_model (load a SavedModel with "
                                   "tf.saved_model.load)")
    assert err.value.exit_code == 2
