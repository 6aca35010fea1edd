"""Whole models written by tf-keras 2.x, as users have them: ``tf_keras.applications``
at small inputs, RNN and text models, nested and transfer-learning models. Each is built
and saved by tf-keras inside the session, then taken through mwconv end to end with no
``--model``: import -> outputs equal tf-keras's -> every weight frozen -> export to
SavedModel, .keras and ONNX -> ``mwconv verify`` -> the weights-only file imports into
the imported architecture. The nine heavy applications run the same checks in this process,
each exported to one of the three formats in turn (``ONE_FORMAT``)."""

import json

import numpy as np
import pytest

from tests import tfkeras_zoo as zoo
from tests.helpers import run_cli, run_json

pytest.importorskip("tf_keras", reason="tf-keras 2.x writes the zoo's files")

HEAVY = {"densenet121", "nasnet_mobile", "inception_v3", "xception", "efficientnet_b0", "efficientnet_v2_b0",
         "resnet50", "resnet50_v2", "mobilenet_v3_large"}
FORMATS = ("saved_model", "keras", "onnx")
# the heavy models run in this process (no command start-up) and each is exported to one
# format, in turn, so that every format still takes deep networks; the others go through the
# command line into all three
ONE_FORMAT = {"densenet121": "saved_model", "inception_v3": "saved_model", "resnet50": "saved_model",
              "efficientnet_b0": "keras", "nasnet_mobile": "keras", "resnet50_v2": "keras",   # NASNet's ONNX: 2 min
              "efficientnet_v2_b0": "onnx", "mobilenet_v3_large": "onnx", "xception": "onnx"}
assert set(ONE_FORMAT) == HEAVY and sorted(set(ONE_FORMAT.values())) == sorted(FORMATS)


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    """{name: (h5, weights h5, inputs, expected outputs)}, written by tf-keras once per session."""
    folder = tmp_path_factory.mktemp("tfkeras_zoo")
    return {"folder": folder, **{name: zoo.write(name, folder) for name in zoo.NAMES}}


def _run(model, feeds):
    import keras
    out = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    return keras.ops.convert_to_numpy(out)


def _relative(got, expected):
    return float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-30))


def _cases():
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in zoo.NAMES]


@pytest.mark.parametrize("name", _cases())
def test_imports_exports_and_verifies_as_is(written, tmp_path, name):
    import mwconv

    h5, weights_h5, feeds, expected = written[name]
    imported = tmp_path / f"{name}.keras"
    if name in ONE_FORMAT:
        return _in_process(name, h5, weights_h5, feeds, expected, imported, tmp_path)
    code, report, err = run_json("import", h5, "-o", imported)
    assert code == 0, err
    assert report["missing"] == [] and report["unused"] == [] and report["mismatched"] == []
    assert report["weights"] and all(not w["trainable"] for w in report["weights"])
    model = mwconv.load_model(imported)
    assert model.trainable_weights == []
    assert _relative(_run(model, feeds), expected) <= 1e-5
    del model

    for fmt, out in (("saved_model", tmp_path / "serving"), ("keras", tmp_path / "exported.keras"),
                     ("onnx", tmp_path / "exported.onnx")):
        # --no-verify: the export's own check is the same verify, run once below
        code, printed, err = run_cli("export", imported, "--format", fmt, "-o", out, "--no-verify")
        assert code == 0, f"{fmt}: {printed} {err}"
        # a deep network run by another engine (a SavedModel's fused graph, onnxruntime) rounds
        # differently; these random networks carry it further than trained ones, so 1e-4 / 1e-3
        code, verified, err = run_json("verify", out, "--reference", imported, "--checks", "partition,outputs",
                                       "--rtol", "1e-4", "--atol", "1e-3")
        assert code == 0 and verified["ok"] is True, f"{fmt}: {err}"

    # the weights-only file (save_weights) into the architecture mwconv rebuilt
    code, report, err = run_json("import", weights_h5, "--model", imported, "-o", tmp_path / "again.keras")
    assert code == 0, err
    assert {w["source"] for w in report["weights"]} == set(report_sources(weights_h5))
    assert _relative(_run(mwconv.load_model(tmp_path / "again.keras"), feeds), expected) <= 1e-5


def _in_process(name, h5, weights_h5, feeds, expected, imported, tmp_path):
    """The same checks through the Python API, with one export format."""
    import mwconv
    _, report = mwconv.import_weights(h5, output=imported)
    assert report.missing == [] and report.unused == [] and report.mismatched == []
    assert report.weights and all(not w["trainable"] for w in report.weights)
    model = mwconv.load_model(imported)
    assert model.trainable_weights == []
    assert _relative(_run(model, feeds), expected) <= 1e-5
    del model
    fmt = ONE_FORMAT[name]
    out = tmp_path / {"saved_model": "serving", "keras": "exported.keras", "onnx": "exported.onnx"}[fmt]
    mwconv.export(imported, fmt, out, verify=False)
    verified = mwconv.verify(out, imported, checks=["partition", "outputs"], rtol=1e-4, atol=1e-3)
    assert verified.ok, f"{fmt}: {[c.problems for c in verified.checks]}"
    _, again = mwconv.import_weights(weights_h5, model=str(imported), output=tmp_path / "again.keras")
    assert {w["source"] for w in again.weights} == set(report_sources(weights_h5))
    assert _relative(_run(mwconv.load_model(tmp_path / "again.keras"), feeds), expected) <= 1e-5


def report_sources(path):
    from mwconv.formats import open_source
    with open_source(str(path)) as src:
        return src.keys()


@pytest.mark.parametrize("name", zoo.NAMES)
def test_inspect_shows_the_architecture(written, name):
    code, report, err = run_json("inspect", written[name][0])
    assert code == 0, err
    assert report["architecture"] is True and report["model"]["layers"] > 0
    assert "refused" not in report["model"]


def test_train_head_leaves_exactly_the_head_trainable_in_every_format(written, tmp_path):
    import mwconv
    from mwconv.formats.saved_model import SavedModelSource

    h5, _, feeds, expected = written["transfer"]
    imported = tmp_path / "transfer.keras"
    code, report, err = run_json("import", h5, "-o", imported, "--train", "head/*")
    assert code == 0, err
    head = sorted(w["target"] for w in report["weights"] if w["trainable"])
    assert head == ["head/fc/bias", "head/fc/kernel", "head/out/bias", "head/out/kernel"]
    model = mwconv.load_model(imported)
    assert sorted(v.path for v in model.trainable_weights) == head
    assert _relative(_run(model, feeds), expected) <= 1e-5
    for fmt, out in (("saved_model", tmp_path / "serving"), ("keras", tmp_path / "exported.keras"),
                     ("onnx", tmp_path / "exported.onnx")):
        code, _, err = run_cli("export", imported, "--format", fmt, "-o", out)
        assert code == 0, f"{fmt}: {err}"
    with SavedModelSource(str(tmp_path / "serving")) as src:
        assert sorted(n for n, t in src.partition().items() if t) == head
    assert sorted(v.path for v in mwconv.load_model(tmp_path / "exported.keras").trainable_weights) == head
    code, verified, err = run_json("verify", tmp_path / "exported.onnx", "--checks", "partition")
    assert code == 0 and verified["ok"] is True, err


def test_a_lambda_layer_is_refused_naming_it(tmp_path):
    tfk = zoo._tfk()
    inp = tfk.Input((4,))
    model = tfk.Model(inp, tfk.layers.Lambda(lambda x: x * 2, name="double")(inp))
    model.save(tmp_path / "lambda.h5")
    code, _, err = run_cli("import", tmp_path / "lambda.h5", "-o", tmp_path / "out.keras")
    assert code == 3 and "'double' is a Lambda layer" in err and not (tmp_path / "out.keras").exists()
    assert len(err.strip().splitlines()) == 1


def test_an_untranslated_tf_op_is_refused_naming_the_op(tmp_path):
    import tensorflow as tf
    tfk = zoo._tfk()
    inp = tfk.Input((4,))
    model = tfk.Model(inp, tf.math.cumsum(inp, axis=1))
    model.save(tmp_path / "cumsum.h5")
    code, _, err = run_cli("import", tmp_path / "cumsum.h5", "-o", tmp_path / "out.keras")
    assert code == 3 and "tf.math.cumsum" in err and "does not translate" in err
    assert len(err.strip().splitlines()) == 1


def test_an_argument_that_changes_the_math_is_refused_with_its_value(tmp_path):
    tfk = zoo._tfk()
    inp = tfk.Input((5, 3))
    model = tfk.Model(inp, tfk.layers.LSTM(2, time_major=True, name="tm")(inp))
    model.save(tmp_path / "tm.h5")
    code, _, err = run_cli("import", tmp_path / "tm.h5", "-o", tmp_path / "out.keras")
    assert code == 3 and "'tm' (LSTM) has time_major=True" in err
    assert len(err.strip().splitlines()) == 1


def test_translation_notes_say_what_changed(written):
    import h5py

    from mwconv.legacy import translate
    with h5py.File(written["mobilenet_v3_small"][0]) as f:
        config = json.loads(f.attrs["model_config"])
    t = translate(config)
    assert t.renamed["Conv_BatchNorm"] == "Conv/BatchNorm"
    assert {"__operators__.add", "math.multiply"} <= set(t.ops)
    assert all(args == ["groups"] for args in t.dropped.values())
    assert config["config"]["layers"][3]["name"] == "Conv/BatchNorm"     # the input is left as it was


def test_a_keras_error_keeps_its_inner_reason_in_one_line(tmp_path):
    import h5py

    tfk = zoo._tfk()
    inp = tfk.Input((4,))
    tfk.Model(inp, tfk.layers.Dense(3, name="fc")(inp)).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["units"] = -1
        f.attrs["model_config"] = json.dumps(config)
    code, _, err = run_cli("import", tmp_path / "m.h5", "-o", tmp_path / "out.keras")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "units=-1" in err and "Error when deserializing" not in err and "pass --model" in err
