"""The tf-keras 2.x file kinds beside the ``.h5``: ``.keras`` archives written by tf-keras's
``model.save("m.keras")`` and legacy SavedModel directories (``save_format="tf"``, with
``keras_metadata.pb``), imported with no ``--model`` through the same translator, outputs
equal to tf-keras's own, every weight frozen. Real architectures from the tf-keras zoo
(tests/tfkeras_zoo.py): an application with TF ops, ConvNeXt's LayerScale, RNN and text
models, wrappers, nested and transfer-learning models."""

import json
import zipfile

import numpy as np
import pytest

from tests import tfkeras_zoo as zoo
from tests.helpers import run_cli, run_json

pytest.importorskip("tf_keras", reason="tf-keras 2.x writes these files")

ARCHIVES = ["mobilenet_v3_small", "convnext_tiny", "lstm_text", "conv1d_text", "bidirectional", "time_distributed",
            "named_sequential", "sequential_inside", "transfer"]
SAVED_MODELS = ["lstm_text", "bidirectional", "time_distributed", "named_sequential",
                "sequential_inside", "transfer"]


def _built(name):
    model = zoo.build(name)
    zoo.perturb(model)
    feeds = zoo.sample_inputs(model)
    return model, feeds, np.asarray(model(feeds if len(feeds) > 1 else feeds[0], training=False))


def _check(path, out, feeds, expected):
    """Imported in this process (the command line's own path is taken by the last test)."""
    import mwconv
    _, imported = mwconv.import_weights(path, output=out)
    report = imported.to_dict()
    assert report["missing"] == [] and report["unused"] == [] and report["mismatched"] == []
    assert report["weights"] and all(not w["trainable"] for w in report["weights"])
    model = mwconv.load_model(out)
    assert model.trainable_weights == []
    got = np.asarray(model(feeds if len(feeds) > 1 else feeds[0]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))
    return report


@pytest.mark.parametrize("name", ARCHIVES)
def test_a_tf_keras_keras_archive_imports_with_no_model(name, tmp_path):
    model, feeds, expected = _built(name)
    model.save(tmp_path / f"{name}.keras")
    with zipfile.ZipFile(tmp_path / f"{name}.keras") as zf:
        assert json.loads(zf.read("metadata.json"))["keras_version"].startswith("2.")   # tf-keras wrote it
    _check(tmp_path / f"{name}.keras", tmp_path / "imported.keras", feeds, expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", SAVED_MODELS)
def test_a_tf_keras_saved_model_imports_from_its_keras_metadata(name, tmp_path):
    model, feeds, expected = _built(name)
    model.save(tmp_path / "sm", save_format="tf")
    assert (tmp_path / "sm" / "keras_metadata.pb").is_file()
    _check(tmp_path / "sm", tmp_path / "imported.keras", feeds, expected)


def test_inspect_shows_a_saved_models_keras_architecture_and_a_bad_metadata_file_is_refused(tmp_path):
    model, feeds, expected = _built("sequential_inside")
    model.save(tmp_path / "sm", save_format="tf")
    code, doc, _ = run_json("inspect", tmp_path / "sm")
    assert code == 0 and doc["architecture"] is True
    assert doc["model"]["classes"]["Sequential"] == 1 and doc["model"]["class"] == "Functional"
    # the nested Sequential's weights are found under its name, as the object graph says
    code, report, err = run_json("import", tmp_path / "sm", "-o", tmp_path / "imported.keras")
    assert code == 0 and all(not w["trainable"] for w in report["weights"]), err
    assert {w["target"]: w["source"] for w in report["weights"]}["block/conv/kernel"] == "conv/kernel"
    (tmp_path / "sm" / "keras_metadata.pb").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    code, _, err = run_cli("import", tmp_path / "sm", "-o", tmp_path / "again.keras")
    assert code == 3 and not (tmp_path / "again.keras").exists()
    assert err.strip().splitlines()[-1].startswith(f"mwconv: error: {tmp_path / 'sm'}: corrupt keras_metadata.pb")
