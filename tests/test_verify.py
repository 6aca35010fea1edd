"""`mwconv verify`: clean artifacts pass; each tampering fails the right check, naming the weight or output."""

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest

from mwconv.verification import device_check, verify
from tests.helpers import run_cli, run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = ["saved_model", "keras", "weights_h5", "onnx"]


def statuses(report):
    return {c.name: c.status for c in report.checks}


@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_artifacts_pass_every_applicable_check(fmt, every_kind):
    report = verify(every_kind[fmt].path, every_kind["keras_src"])
    assert report.ok, report.format()
    got = statuses(report)
    assert got["partition"] == "pass" and got["outputs"] == "pass"
    assert got["train-step"] == ("pass" if fmt in ("keras", "weights_h5") else "skipped")
    assert got["devices"] == "skipped" and report.check("devices").message == "no GPU visible"
    assert report.check("source").status == "skipped"  # built in Python: no source recorded


def test_train_step_keeps_a_frozen_batch_normalization_in_inference_mode(every_kind):
    # 'bn' has gamma and beta frozen: it runs as a trainable=False layer, its statistics stay
    report = verify(every_kind["keras"].path, every_kind["keras_src"], checks=["train-step"])
    check = report.check("train-step")
    assert check.status == "pass", check.problems
    assert check.details["statistics"] == [] and check.details["opted_in_statistics"] == []
    assert "statistics" not in check.message


# -- tampering ---------------------------------------------------------------------
def rewrite_keras(src, dst, config_fn=None, weights_fn=None):
    """Copy a .keras zip, editing config.json and/or model.weights.h5."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json" and config_fn:
                data = json.dumps(config_fn(json.loads(data))).encode()
            if item.filename == "model.weights.h5" and weights_fn:
                buf = io.BytesIO(data)
                with h5py.File(buf, "a") as f:
                    weights_fn(f)
                data = buf.getvalue()
            zout.writestr(item, data)


def layer_config(config, name):
    return next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == name)["config"]


def test_frozen_weight_flipped_to_trainable(every_kind, tmp_path):
    def flip(config):
        layer_config(config, "conv1d")["frozen"] = ["bias"]  # kernel frozen in the reference
        return config

    rewrite_keras(every_kind["keras"].path, tmp_path / "t.keras", config_fn=flip)
    report = verify(tmp_path / "t.keras", every_kind["keras_src"], checks=["partition"])
    assert not report.ok
    assert report.check("partition").problems == [
        "weight 'conv1d/kernel' is frozen in the reference but trainable in the artifact"]


def test_one_ulp_change(every_kind, tmp_path):
    path = tmp_path / "t.weights.h5"
    with open(every_kind["weights_h5"].path, "rb") as f:
        path.write_bytes(f.read())
    with h5py.File(path, "a") as f:
        ds = f["layers/dense/vars/0"]  # the 'masked' MixedDense's first saved weight: its kernel
        value = ds[()]
        value[1, 2] = np.nextafter(value[1, 2], np.float32(np.inf))
        ds[...] = value
    report = verify(path, every_kind["keras_src"], checks=["partition"])
    problem, = report.check("partition").problems
    assert problem.startswith("weight 'masked/kernel' value differs from the reference")
    assert "= 1 ulp at index (1, 2)" in problem


def test_missing_weight(every_kind, tmp_path):
    def no_bias(config):
        layer_config(config, "conv_lora")["use_bias"] = False
        return config

    def drop(f):  # conv_lora saves kernel, bias, adapter_a, adapter_b: remove the bias and renumber
        group = f["layers/conv2d_1/vars"]
        del group["1"]
        group.move("2", "1")
        group.move("3", "2")

    rewrite_keras(every_kind["keras"].path, tmp_path / "t.keras", config_fn=no_bias, weights_fn=drop)
    report = verify(tmp_path / "t.keras", every_kind["keras_src"], checks=["partition"])
    assert "weight 'conv_lora/bias' is missing from the artifact" in report.check("partition").problems


def test_output_changed_beyond_tolerance(every_kind, tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(every_kind["onnx"].path)
    for t in model.graph.initializer:  # nudge every float weight: some sit behind masks
        arr = numpy_helper.to_array(t).copy()
        if arr.dtype == np.float32 and arr.ndim >= 2:
            arr.flat[0] += 0.5
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
    onnx.save(model, tmp_path / "t.onnx")
    report = verify(tmp_path / "t.onnx", every_kind["keras_src"], checks=["partition", "outputs"])
    assert statuses(report) == {"partition": "pass", "outputs": "fail"}
    assert report.check("outputs").problems[0].startswith("output 'combined': max abs error")


@keras.saving.register_keras_serializable(package="tests")
class AssignsFrozen(keras.layers.Layer):
    """Scales by a frozen weight, and (wrongly) moves it whenever it trains."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones", trainable=False)

    def call(self, x, training=None):
        if training:
            self.scale.assign(self.scale * 1.5)
        return x * self.scale


def test_layer_assigning_to_a_frozen_weight(tmp_path):
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(4, name="d")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = AssignsFrozen(name="sneaky")(h)
    model = keras.Model(inp, out)
    model.save(tmp_path / "m.keras")
    report = verify(tmp_path / "m.keras", tmp_path / "m.keras", checks=["train-step"])
    check = report.check("train-step")
    assert check.status == "fail"
    assert check.problems == ["frozen weight 'sneaky/scale' changed during one training step: layer 'sneaky' "
                              "assigns to it in call()"]
    assert check.details["statistics"] == ["bn/moving_mean", "bn/moving_variance"]


# -- the seed article's FixedBiasLinear, exactly as written there ---------------------
@keras.saving.register_keras_serializable(package="article")
class ArticleFixedBiasLinear(keras.layers.Layer):
    def __init__(self, units, bias_value=0.5, **kwargs):
        import tensorflow as tf

        super().__init__(**kwargs)
        self.units = units
        self.bias = tf.Variable(bias_value, trainable=False, dtype=tf.float32)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                      trainable=True)

    def call(self, inputs):
        import tensorflow as tf

        return tf.matmul(inputs, self.kernel) + self.bias

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


UNTRACKED = ("layer 'fixed' holds 'bias', a tensorflow.ResourceVariable that Keras does not track (in the {}): it "
             "is never saved, and a reloaded model gets whatever the layer's constructor makes; create it with "
             "self.add_weight(...) in build() so that 'bias' is saved and restored")


def test_article_fixed_bias_linear_fails_and_names_the_cause(tmp_path):
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, ArticleFixedBiasLinear(units=3, bias_value=0.1, name="fixed")(inp))
    model.save(tmp_path / "article.keras")
    reloaded = keras.saving.load_model(tmp_path / "article.keras")
    assert float(reloaded.get_layer("fixed").bias.numpy()) == 0.5  # the bug, as the article's readers meet it
    report = verify(tmp_path / "article.keras", model)
    assert not report.ok
    partition, outputs = report.check("partition"), report.check("outputs")
    assert partition.status == "fail" and partition.problems == [UNTRACKED.format("reference")]
    assert "1 unnamed weights (add_weight without a name) paired by position" in partition.message
    assert outputs.status == "fail" and outputs.problems[0].startswith("output 'fixed': max abs error 0.4")
    assert outputs.problems[1] == "likely cause: " + UNTRACKED.format("reference")


def test_article_layer_fails_against_a_file_reference_too(tmp_path):
    """Reloaded on both sides, the outputs agree (both 0.5): the partition check is what catches it."""
    inp = keras.Input((4,), name="x")
    keras.Model(inp, ArticleFixedBiasLinear(units=3, bias_value=0.1, name="fixed")(inp)).save(tmp_path / "a.keras")
    code, doc, _ = run_json("verify", tmp_path / "a.keras", "--reference", tmp_path / "a.keras")
    assert code == 1 and doc["ok"] is False
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["outputs"]["status"] == "pass"
    assert checks["partition"]["status"] == "fail"
    assert checks["partition"]["problems"] == [UNTRACKED.format("reference")]


def test_mwconv_fixed_bias_linear_passes_where_the_article_fails(tmp_path):
    from mwconv.layers import FixedBiasLinear

    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, FixedBiasLinear(units=3, bias_value=0.1, name="fixed")(inp))
    model.save(tmp_path / "ok.keras")
    report = verify(tmp_path / "ok.keras", model)
    assert report.ok and report.warnings == []


# -- devices -----------------------------------------------------------------------------
def test_device_comparison_catches_a_perturbed_device():
    base = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    ok = device_check({"CPU:0": [base], "GPU:0": [base + 1e-7]}, ["logits"])
    assert ok.status == "pass" and "TF32 disabled" in ok.message
    bad = device_check({"CPU:0": [base], "GPU:0": [base + np.float32(1e-3)]}, ["logits"])
    assert bad.status == "fail"
    assert bad.problems[0].startswith("GPU:0 vs CPU:0: output 'logits': max abs error 0.001")


DEVICE_SCRIPT = """
import sys, json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mwconv.verification import verify
report = verify(sys.argv[1], sys.argv[2], checks=["devices"], devices=["CPU:0", "CPU:1"])
print(json.dumps(report.to_dict()))
"""


@pytest.mark.parametrize("fmt", ["keras", "saved_model"])
def test_device_check_runs_on_two_logical_cpus(fmt, every_kind):
    out = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, str(every_kind[fmt].path), str(every_kind["keras_src"])],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    check = json.loads(out.stdout.strip().splitlines()[-1])["checks"][0]
    assert check["status"] == "pass", check
    assert check["details"]["devices"] == ["CPU:0", "CPU:1"] and check["details"]["tf32"] == "disabled"
    assert check["details"]["comparisons"][0]["device"] == "CPU:1"


def test_require_gpu_turns_the_skip_into_a_failure(every_kind):
    report = verify(every_kind["keras"].path, every_kind["keras_src"], checks=["devices"], require=["gpu"])
    assert not report.ok
    assert report.check("devices").problems == ["required by --require, but skipped: no GPU visible"]


# -- source check, CLI, JSON schema ------------------------------------------------------
def test_source_check_runs_the_original_tf_keras_model(samples, tmp_path):
    """The recorded source is looked up in the artifact's folder only, and used only when its
    sha256 is the recorded one; --source names any file."""
    original = samples / "tfkeras2_full.h5"
    run_cli("import", original, "-o", tmp_path / "m.keras")
    check = verify(tmp_path / "m.keras", tmp_path / "m.keras", checks=["source"]).check("source")
    assert check.status == "skipped"
    assert check.message == (f"the recorded source {original} is not in the artifact's folder (a recorded path "
                             "outside it is never followed; pass --source to check it)")
    check = verify(tmp_path / "m.keras", tmp_path / "m.keras", checks=["source"], source=str(original)).check("source")
    assert check.status == "pass" and check.details["source"] == str(original)
    shutil.copy(original, tmp_path / "tfkeras2_full.h5")        # a bundle: the source beside the artifact
    check = verify(tmp_path / "m.keras", tmp_path / "m.keras", checks=["source"]).check("source")
    assert check.status == "pass" and check.details["source"] == str(tmp_path / "tfkeras2_full.h5")
    with h5py.File(tmp_path / "tfkeras2_full.h5", "a") as f:     # not the file that was imported
        f.attrs["note"] = "changed"
    check = verify(tmp_path / "m.keras", tmp_path / "m.keras", checks=["source"]).check("source")
    assert check.status == "skipped" and "its sha256 differs from the manifest's" in check.message


def test_cli_exit_codes_and_json_schema(every_kind, tmp_path):
    import jsonschema

    with open(os.path.join(ROOT, "docs", "verify-report.schema.json"), encoding="utf8") as f:
        schema = json.load(f)
    code, out, _ = run_cli("verify", every_kind["keras"].path, "--reference", every_kind["keras_src"], "--json",
                           "--report", tmp_path / "r.json")
    assert code == 0
    doc = json.loads(out)
    jsonschema.validate(doc, schema)
    assert json.loads((tmp_path / "r.json").read_text()) == doc
    assert [c["name"] for c in doc["checks"]] == ["partition", "outputs", "train-step", "devices", "source", "drift"]

    rewrite_keras(every_kind["keras"].path, tmp_path / "t.keras",
                  config_fn=lambda c: (layer_config(c, "conv1d").update(frozen=["bias"]), c)[1])
    code, out, _ = run_cli("verify", tmp_path / "t.keras", "--reference", every_kind["keras_src"], "--json")
    assert code == 1
    doc = json.loads(out)
    jsonschema.validate(doc, schema)
    assert doc["ok"] is False and doc["checks"][0]["status"] == "fail"

    code, out, _ = run_cli("verify", every_kind["keras"].path, "--reference", every_kind["keras_src"])
    assert code == 0 and "✓ partition" in out and "– devices    no GPU visible" in out
    code, _, err = run_cli("verify", every_kind["keras"].path, "--checks", "partition,colour")
    assert code == 2 and "unknown check 'colour'" in err
    code, _, err = run_cli("verify", tmp_path / "nothing.keras")
    assert code == 3


def test_probe_inputs_file(every_kind, tmp_path):
    from mwconv import modelio
    from mwconv.verification import probes

    model = every_kind["model"]
    inputs = probes.random_inputs(modelio.input_specs(model), 2, 5, probes.vocabulary(model))
    np.savez(tmp_path / "probe.npz", **{f"input:{k}": v for k, v in inputs.items()})
    report = verify(every_kind["onnx"].path, every_kind["keras_src"], inputs=tmp_path / "probe.npz",
                    checks=["outputs"])
    assert report.ok
    np.savez(tmp_path / "partial.npz", image=inputs["image"])
    code, _, err = run_cli("verify", every_kind["onnx"].path, "--reference", every_kind["keras_src"],
                           "--inputs", tmp_path / "partial.npz")
    assert code == 2 and "holds no array for input 'ids'" in err


TORCH_VERIFY = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "torch"
from mwconv.verification import verify
report = verify(sys.argv[1], sys.argv[2], checks=["partition", "outputs", "train-step", "devices"])
print(json.dumps(report.to_dict()))
"""


def test_verify_under_the_torch_backend(every_kind):
    """The .keras path of verify uses Keras device scopes only: it runs under KERAS_BACKEND=torch."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0 to run this test)")
    out = subprocess.run([sys.executable, "-c", TORCH_VERIFY, str(every_kind["keras"].path),
                          str(every_kind["keras_src"])], capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    got = {c["name"]: c["status"] for c in doc["checks"]}
    assert got == {"partition": "pass", "outputs": "pass", "train-step": "pass",
                   "devices": "pass" if "cuda" in out.stdout else "skipped"}, doc


# -- in-memory references ------------------------------------------------------------------
def _functional():
    from mwconv.layers import MixedDense

    inp = keras.Input((6,))                       # unnamed: 'keras_tensor_N' here, 'input_layer' reloaded
    h = MixedDense(5, frozen=["kernel"], activation="relu", name="pretrained")(inp)
    return keras.Model(inp, keras.layers.Dense(3, name="head")(h))


def _named_sequential():
    from mwconv.layers import MixedDense

    return keras.Sequential([keras.Input((6,)), MixedDense(5, frozen=["kernel", "bias"], name="pretrained"),
                             keras.layers.Dense(3, name="head")], name="seqnet")


@pytest.mark.parametrize("build", [_functional, _named_sequential])
@pytest.mark.parametrize("fmt, name", [("keras", "m.keras"), ("saved_model", "serving"),
                                       ("safetensors", "m.safetensors")])
def test_clean_artifact_passes_against_the_in_memory_model(build, fmt, name, tmp_path):
    from mwconv.convert.exporter import export

    model = build()
    result = export(model, fmt, tmp_path / name, verify=False)
    report = verify(result.path, model, checks=["partition", "outputs"])
    assert report.ok, report.format()
    frozen = 1 if build is _functional else 2
    assert report.check("partition").message.startswith(f"4 weights ({frozen} frozen, {4 - frozen} trainable)")
    if fmt == "keras":   # reloaded, the input is 'input_layer': matched by position, and said so
        assert report.notes[0].startswith("inputs matched by position (names differ): reference 'keras_tensor")


def test_reloaded_named_sequential_pairs_the_prefixed_paths(tmp_path):
    model = _named_sequential()
    assert [w.path for w in model.weights][0] == "seqnet/pretrained/kernel"
    model.save(tmp_path / "s.keras")
    report = verify(tmp_path / "s.keras", model, checks=["partition"])
    assert report.ok
    assert report.check("partition").message.endswith("; 4 weights paired after dropping the model-name prefix "
                                                      "('seqnet/')")


def test_in_memory_reference_with_other_inputs_is_a_usage_error(tmp_path):
    from mwconv.errors import UsageError

    _functional().save(tmp_path / "m.keras")
    inp = keras.Input((7,))
    other = keras.Model(inp, keras.layers.Dense(3)(inp))
    with pytest.raises(UsageError) as err:
        verify(tmp_path / "m.keras", other)
    assert "of the artifact has shape (None, 6), input" in str(err.value) and "(None, 7)" in str(err.value)


def test_raise_for_failure(every_kind, tmp_path):
    from mwconv.errors import VerificationFailed

    good = verify(every_kind["keras"].path, every_kind["keras_src"], checks=["partition"])
    assert good.raise_for_failure() is good
    inp = keras.Input((4,), name="x")
    keras.Model(inp, ArticleFixedBiasLinear(units=3, bias_value=0.1, name="fixed")(inp)).save(tmp_path / "a.keras")
    with pytest.raises(VerificationFailed) as err:
        verify(tmp_path / "a.keras", tmp_path / "a.keras", checks=["partition", "outputs"]).raise_for_failure()
    assert err.value.exit_code == 1 and err.value.details["ok"] is False
    assert str(err.value).startswith(f"{tmp_path / 'a.keras'}: 1 checks failed: partition: layer 'fixed' holds "
                                     "'bias', a tensorflow.ResourceVariable that Keras does not track")
