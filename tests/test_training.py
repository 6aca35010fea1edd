"""Fine-tuning an imported model: the frozen part behaves in `fit` as Keras's frozen layers
do (BatchNormalization in inference mode, statistics fixed), the partition changes between
stages with `set_trainable`, `verify --baseline` proves the frozen part untouched after
training, and `FrozenGuard` stops a `fit` in which a frozen weight moves."""

import ast
import json
import os
import warnings

import keras
import numpy as np
import pytest

import mwconv
from mwconv import layers as ml
from mwconv.callbacks import FrozenGuard, FrozenWeightMoved
from mwconv.errors import UsageError
from mwconv.layers.statistics import STATISTICS_LAYERS, model_statistics
from mwconv.verification import verify
from tests import tfkeras_zoo
from tests.helpers import run_cli, run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def weights_of(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights}


def small_cnn(name="cnn"):
    """A Keras 3 CNN with BatchNormalization in the pretrained part and a new head."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3), name="img")
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(6, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inp, out, name=name)
    rng = np.random.default_rng(0)
    for v in model.weights:
        value = rng.normal(0, 0.3, v.shape).astype("float32")
        v.assign(np.abs(value) + 0.5 if "variance" in v.name else value)
    return model


def data(n=32, shape=(8, 8, 3), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n,) + shape).astype("float32"), rng.normal(0, 1, (n, classes)).astype("float32")


def fit(model, x, y, epochs=1, lr=0.05, callbacks=None):
    keras.utils.set_random_seed(2)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)


@pytest.fixture(scope="module")
def imported_cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn")
    small_cnn().save(folder / "pretrained.keras")
    mwconv.import_weights(folder / "pretrained.keras", train=["head/*"], output=folder / "imported.keras")
    return folder


# -- frozen BatchNormalization runs as Keras runs a frozen layer --------------------
def test_every_layer_whose_call_reads_trainable_is_handled():
    """Keras's own source: each layer class whose call() reads self.trainable must be in
    STATISTICS_LAYERS (a release that adds one fails here until it is handled)."""
    import keras.src.layers as source

    readers = set()
    for folder, _, files in os.walk(os.path.dirname(source.__file__)):
        for name in files:
            if not name.endswith(".py") or "test" in name:
                continue
            with open(os.path.join(folder, name), encoding="utf8") as f:
                tree = ast.parse(f.read())
            for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "call"):
                    if any(isinstance(a, ast.Attribute) and a.attr == "trainable" and isinstance(a.value, ast.Name)
                           and a.value.id == "self" for a in ast.walk(fn)):
                        readers.add(cls.name)
    assert readers == {"BatchNormalization"}
    assert {c.__name__ for c in STATISTICS_LAYERS} == readers


def test_imported_model_trains_exactly_as_stock_keras_with_the_same_frozen_set(imported_cnn):
    """The same data, seed and frozen set: the mixed import and the stock model with
    layer.trainable = False end with bit-identical weights, statistics untouched."""
    stock = keras.saving.load_model(imported_cnn / "pretrained.keras")
    for layer in stock.layers:
        layer.trainable = layer.name == "head"
    mixed = mwconv.load_model(imported_cnn / "imported.keras")
    start = weights_of(mixed)
    x, y = data()
    fit(stock, x, y, epochs=2)
    fit(mixed, x, y, epochs=2)
    got, want = weights_of(mixed), weights_of(stock)
    assert sorted(got) == sorted(want)
    for path in want:
        np.testing.assert_array_equal(got[path], want[path], err_msg=path)
    for path in ("bn/moving_mean", "bn/moving_variance", "bn2/moving_mean", "bn2/moving_variance"):
        np.testing.assert_array_equal(got[path], start[path], err_msg=path)
    assert not np.array_equal(got["head/kernel"], start["head/kernel"])


def test_frozen_batch_normalization_ignores_training_true(imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    x, _ = data(8)
    before = weights_of(model)
    np.testing.assert_array_equal(np.asarray(model(x, training=True)), np.asarray(model(x, training=False)))
    assert weights_of(model)["bn/moving_mean"].tolist() == before["bn/moving_mean"].tolist()
    assert {layer: state for layer, state in model_statistics(model).values()} == {"bn": "fixed", "bn2": "fixed"}


def test_a_layer_trained_with_train_glob_updates_its_statistics(tmp_path, imported_cnn):
    mwconv.import_weights(imported_cnn / "pretrained.keras", train=["head/*", "bn2/*"], output=tmp_path / "m.keras")
    model = mwconv.load_model(tmp_path / "m.keras")
    before = weights_of(model)
    fit(model, *data())
    after = weights_of(model)
    assert not np.array_equal(after["bn2/moving_mean"], before["bn2/moving_mean"])
    np.testing.assert_array_equal(after["bn/moving_mean"], before["bn/moving_mean"])


def test_opted_in_statistics_update_and_survive_save_and_every_format(tmp_path, imported_cnn):
    code, out, err = run_cli("import", imported_cnn / "pretrained.keras", "--train", "head/*",
                             "--update-statistics", "bn2", "-o", tmp_path / "m.keras")
    assert code == 0, err
    assert "BatchNormalization layers: 1 frozen (inference mode in fit, statistics fixed); 1 frozen with " \
           "statistics updating (--update-statistics): bn2" in out
    model = mwconv.load_model(tmp_path / "m.keras")
    assert model.get_layer("bn2").get_config()["update_statistics"] is True
    assert "update_statistics" not in model.get_layer("bn").get_config()
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    before = weights_of(model)
    fit(model, *data())
    after = weights_of(model)
    assert not np.array_equal(after["bn2/moving_mean"], before["bn2/moving_mean"])
    np.testing.assert_array_equal(after["bn2/gamma"], before["bn2/gamma"])
    np.testing.assert_array_equal(after["bn/moving_variance"], before["bn/moving_variance"])
    # the train-step check tells the opted-in update apart
    report = verify(tmp_path / "m.keras", checks=["partition", "train-step"])
    check = report.check("train-step")
    assert check.status == "pass", check.problems
    assert check.details["opted_in_statistics"] == ["bn2/moving_mean", "bn2/moving_variance"]
    assert check.details["statistics"] == []
    assert "2 statistics of frozen layers that opted in (update_statistics) updated (bn2)" in check.message
    # the manifest of every export records the state of each statistic
    code, out, err = run_cli("export", tmp_path / "m.keras", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert code == 0, err + out
    import onnx
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    manifest = json.loads(next(v for k, v in props.items() if "manifest" in k))
    states = {w["path"]: w.get("statistics") for w in manifest["weights"]}
    assert states["bn2/moving_mean"] == "opted-in" and states["bn/moving_mean"] == "fixed"
    assert states["conv/kernel"] is None


def test_update_statistics_glob_that_names_no_statistics_layer_is_a_usage_error(tmp_path, imported_cnn):
    code, out, err = run_cli("import", imported_cnn / "pretrained.keras", "--update-statistics", "conv",
                             "-o", tmp_path / "m.keras")
    assert code == 2
    assert "--update-statistics 'conv' matches no layer with moving statistics (the target's are bn, bn2)" in err
    assert not (tmp_path / "m.keras").exists()


class LegacyBatchNormalization(ml.MixedBatchNormalization):
    """A mixed BatchNormalization as older code wrote it: training passed straight through."""

    def call(self, inputs, training=None, mask=None):
        return keras.layers.BatchNormalization.call(self, inputs, training=training, mask=mask)


keras.saving.register_keras_serializable(package="tests")(LegacyBatchNormalization)


def test_train_step_fails_naming_the_frozen_layer_whose_statistics_move(tmp_path):
    inp = keras.Input((4,), name="x")
    h = ml.MixedDense(4, frozen=["kernel", "bias"], name="d")(inp)
    h = LegacyBatchNormalization(frozen=["gamma", "beta"], name="old_bn")(h)
    out = keras.layers.Dense(2, name="head")(h)
    keras.Model(inp, out).save(tmp_path / "m.keras")
    check = verify(tmp_path / "m.keras", tmp_path / "m.keras", checks=["train-step"]).check("train-step")
    assert check.status == "fail"
    assert check.problems == [
        f"statistic 'old_bn/{n}' of frozen layer 'old_bn' changed during one training step: a frozen "
        "BatchNormalization must run in inference mode (opt in per layer with update_statistics / "
        "--update-statistics)" for n in ("moving_mean", "moving_variance")]


def test_frozen_batch_normalization_inside_a_nested_model_and_a_wrapper(tmp_path):
    inner_in = keras.Input((30, 4), name="inner_in")
    inner_out = keras.layers.Dense(3, name="inner_dense")(keras.layers.BatchNormalization(name="inner_bn")(inner_in))
    backbone = keras.Model(inner_in, inner_out, name="backbone")
    inp = keras.Input((5, 6, 4), name="x")
    h = keras.layers.TimeDistributed(keras.layers.BatchNormalization(name="td_bn"), name="td")(inp)
    h = backbone(keras.layers.Reshape((30, 4), name="flat")(h))
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten(name="flatten")(h))
    model = keras.Model(inp, out, name="nested")
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(np.abs(rng.normal(size=v.shape)).astype("float32") + 0.1)
    model.save(tmp_path / "src.keras")
    mwconv.import_weights(tmp_path / "src.keras", train=["head/*"], output=tmp_path / "m.keras")
    loaded = mwconv.load_model(tmp_path / "m.keras")
    states = {layer: state for layer, state in model_statistics(loaded).values()}
    assert states == {"td/td_bn": "fixed", "backbone/inner_bn": "fixed"}
    before = weights_of(loaded)
    fit(loaded, rng.normal(size=(16, 5, 6, 4)).astype("float32"), np.ones((16, 2), "float32"))
    after = weights_of(loaded)
    assert not np.array_equal(after["head/kernel"], before["head/kernel"])
    for path in before:
        if not path.startswith("head/"):
            np.testing.assert_array_equal(after[path], before[path], err_msg=path)


# -- set_trainable: staged unfreezing ------------------------------------------------
def test_set_trainable_unfreezes_records_in_config_and_warns_when_compiled(tmp_path, imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match=r"call model.compile\(...\) again"):
        change = mwconv.set_trainable(model, train=["bn2/*", "conv2/*"])
    assert change.trained == ["conv2/kernel", "conv2/bias", "bn2/gamma", "bn2/beta"]
    assert change.frozen == [] and change.statistics == {"bn2": "trains"}
    assert model.get_layer("bn2").frozen == [] and model.get_layer("conv2").frozen == []
    assert {w.path for w in model.trainable_weights} == {"conv2/kernel", "conv2/bias", "bn2/gamma", "bn2/beta",
                                                         "head/kernel", "head/bias"}
    before = weights_of(model)
    fit(model, *data())                                # compile again, as Keras requires
    after = weights_of(model)
    for path in ("conv2/kernel", "bn2/gamma", "bn2/moving_mean"):
        assert not np.array_equal(after[path], before[path]), path    # gradients reach the unfrozen weights
    for path in ("conv/kernel", "bn/gamma", "bn/moving_mean"):
        np.testing.assert_array_equal(after[path], before[path], err_msg=path)
    model.save(tmp_path / "stage2.keras")
    again = mwconv.load_model(tmp_path / "stage2.keras")
    assert [w.path for w in again.trainable_weights] == [w.path for w in model.trainable_weights]


def test_set_trainable_freezes_a_stock_layer_and_the_save_records_it(tmp_path, imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    assert type(model.get_layer("head")) is keras.layers.Dense
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # not compiled: no warning
        change = mwconv.set_trainable(model, freeze=["*"], train=["conv2/*"])
    assert change.frozen == ["head/kernel", "head/bias"] and change.trained == ["conv2/kernel", "conv2/bias"]
    assert isinstance(model.get_layer("head"), ml.MixedDense)
    x, _ = data(4)
    model.save(tmp_path / "m.keras")
    again = mwconv.load_model(tmp_path / "m.keras")
    assert [w.path for w in again.trainable_weights] == ["conv2/kernel", "conv2/bias"]
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))


def test_set_trainable_refuses_globs_that_match_nothing(imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    with pytest.raises(UsageError, match=r"glob 'block_99_\*' matches no weight of model 'cnn'"):
        mwconv.set_trainable(model, train=["block_99_*"])
    with pytest.raises(UsageError, match="needs `train`, `freeze` or `update_statistics`"):
        mwconv.set_trainable(model)
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]


# -- FrozenGuard ---------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="tests")
class Drifts(keras.layers.Layer):
    """A custom layer that assigns to its own frozen weight when training."""

    def build(self, shape):
        self.scale = self.add_weight(name="scale", shape=(shape[-1],), initializer="ones", trainable=False)

    def call(self, x, training=None):
        if training:
            self.scale.assign(self.scale * 1.01)
        return x * self.scale


def test_frozen_guard_stops_fit_naming_the_weight_that_moved():
    inp = keras.Input((4,), name="x")
    h = ml.MixedDense(4, frozen=["kernel"], name="d")(inp)
    out = keras.layers.Dense(2, name="head")(Drifts(name="sneaky")(h))
    model = keras.Model(inp, out)
    guard = FrozenGuard(every_n_steps=2)
    x, y = np.ones((64, 4), "float32"), np.zeros((64, 2), "float32")
    with pytest.raises(FrozenWeightMoved, match=r"frozen weight 'sneaky/scale' changed during training \(step 2\)"):
        fit(model, x, y, epochs=3, callbacks=[guard])
    assert guard.checks == 1                       # stopped at the first check, in the first epoch
    assert FrozenWeightMoved.exit_code == 1


def test_frozen_guard_passes_a_clean_fit_and_ignores_training_statistics(imported_cnn, tmp_path):
    mwconv.import_weights(imported_cnn / "pretrained.keras", train=["head/*", "bn2/*"], output=tmp_path / "m.keras")
    model = mwconv.load_model(tmp_path / "m.keras")
    guard = FrozenGuard(every_n_steps=1)
    fit(model, *data(), epochs=2, callbacks=[guard])
    assert guard.checks == 2 * 4 + 2               # every step and every epoch end
    assert "bn2/moving_mean" not in guard._expected and "bn/moving_mean" in guard._expected


def test_frozen_guard_rejects_a_bad_interval():
    with pytest.raises(ValueError, match=r"every_n_steps.*Received: every_n_steps=0"):
        FrozenGuard(every_n_steps=0)


# -- the drift check ---------------------------------------------------------------
def test_drift_check_passes_after_training_and_fails_naming_a_moved_frozen_weight(tmp_path, imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    fit(model, *data())
    model.save(tmp_path / "finetuned.keras")
    code, report, _ = run_json("verify", tmp_path / "finetuned.keras", "--baseline", imported_cnn / "imported.keras")
    assert code == 0
    drift = next(c for c in report["checks"] if c["name"] == "drift")
    assert drift["status"] == "pass"
    assert drift["details"]["frozen_identical"] == 12
    assert [c["path"] for c in drift["details"]["changed"]] == ["head/kernel", "head/bias"]
    assert all(c["max_abs"] > 0 for c in drift["details"]["changed"])
    assert drift["details"]["added"] == [] and drift["details"]["unfrozen"] == []
    # a frozen weight changed by hand: exit 1, naming it
    model.get_layer("conv2").kernel.assign(model.get_layer("conv2").kernel * 1.0001)
    model.save(tmp_path / "tampered.keras")
    code, out, _ = run_cli("verify", tmp_path / "tampered.keras", "--baseline", imported_cnn / "imported.keras")
    assert code == 1
    assert "- frozen weight 'conv2/kernel' moved since the baseline" in out
    assert out.count("moved since the baseline") == 1


def test_drift_check_lists_added_weights_and_unfrozen_ones(tmp_path, imported_cnn):
    base = mwconv.load_model(imported_cnn / "imported.keras")
    mwconv.set_trainable(base, train=["bn2/*"])
    features = base.get_layer("pool").output
    extra = keras.layers.Dense(2, name="aux")(features)
    grown = keras.Model(base.inputs, [base.outputs[0], extra], name="cnn")
    grown.compile(optimizer=keras.optimizers.SGD(0.05), loss=["mse", "mse"])
    x, y = data()
    grown.fit(x, [y, y[:, :2]], batch_size=8, verbose=0)
    grown.save(tmp_path / "grown.keras")
    code, out, _ = run_cli("verify", tmp_path / "grown.keras", "--baseline", imported_cnn / "imported.keras")
    assert code == 1
    assert "weight 'bn2/gamma' is frozen in the baseline but trainable in the artifact (pass --allow-unfrozen " \
           "'bn2/*' if a later training stage unfroze it on purpose)" in out
    code, report, _ = run_json("verify", tmp_path / "grown.keras", "--baseline", imported_cnn / "imported.keras",
                               "--allow-unfrozen", "bn2/*")
    assert code == 0, report
    drift = next(c for c in report["checks"] if c["name"] == "drift")
    assert drift["details"]["added"] == ["aux/kernel", "aux/bias"]
    assert [u["path"] for u in drift["details"]["unfrozen"]] == ["bn2/gamma", "bn2/beta"]
    assert sorted(drift["details"]["statistics"]) == ["bn2/moving_mean", "bn2/moving_variance"]


def test_drift_check_through_an_onnx_manifest_and_a_pipeline(tmp_path, imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    fit(model, *data())
    model.save(tmp_path / "finetuned.keras")
    code, _, err = run_cli("export", tmp_path / "finetuned.keras", "--format", "onnx", "-o", tmp_path / "ft.onnx")
    assert code == 0, err
    (tmp_path / "drift.toml").write_text(f"""
[source]
path = "{imported_cnn / 'pretrained.keras'}"
[import]
train = ["head/*"]
update_statistics = ["bn2"]
output = "again.keras"
[[export]]
format = "onnx"
output = "unused.onnx"
[verify]
baseline = "{imported_cnn / 'imported.keras'}"
""")
    report = verify(tmp_path / "ft.onnx", baseline=imported_cnn / "imported.keras", checks=["drift"])
    drift = report.check("drift")
    assert drift.status == "pass", drift.problems
    assert drift.details["frozen_identical"] == 12 and len(drift.details["changed"]) == 2
    code, out, err = run_cli("run", tmp_path / "drift.toml")
    assert code == 0, out + err
    assert out.count("drift      12 of 12 frozen weights bit-identical to the baseline") == 1
    assert mwconv.load_model(tmp_path / "again.keras").get_layer("bn2").update_statistics is True


# -- a two-stage fine-tune of a tf-keras MobileNetV2 ------------------------------
@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mobilenet")
    tfk = tfkeras_zoo._tfk()
    tfk.utils.set_random_seed(0)
    net = tfk.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=4)
    tfkeras_zoo.perturb(net)
    net.save(folder / "mobilenet_v2.h5")
    code, out, err = run_cli("import", folder / "mobilenet_v2.h5", "--train", "predictions/*",
                             "-o", folder / "imported.keras")
    assert code == 0, err
    return folder


def test_two_stage_fine_tune_of_a_tf_keras_mobilenet_v2(mobilenet, tmp_path):
    model = mwconv.load_model(mobilenet / "imported.keras")
    statistics = model_statistics(model)
    assert len(statistics) == 2 * 52 and {s for _, s in statistics.values()} == {"fixed"}
    start = weights_of(model)
    x, y = data(32, (32, 32, 3), 4)
    backbone = keras.Model(model.inputs, model.get_layer("out_relu").output)
    features = np.asarray(backbone(x[:8]))
    fit(model, x, y, lr=0.01, callbacks=[FrozenGuard()])                       # stage 1: the head
    stage1 = weights_of(model)
    for path, value in start.items():
        if not path.startswith("predictions/"):
            np.testing.assert_array_equal(stage1[path], value, err_msg=path)
    np.testing.assert_array_equal(np.asarray(backbone(x[:8])), features)
    change = mwconv.set_trainable(model, train=["block_16_*"])              # stage 2: the last block
    assert len(change.trained) == 9 and set(change.statistics.values()) == {"trains"}
    fit(model, x, y, lr=0.001, callbacks=[FrozenGuard(every_n_steps=2)])
    stage2 = weights_of(model)
    moved = sorted(p for p in start if not np.array_equal(stage2[p], start[p]))
    assert moved and all(p.startswith(("block_16_", "predictions/")) for p in moved)
    assert "block_16_project_BN/moving_mean" in moved
    for path in statistics:
        if not path.startswith("block_16_"):
            np.testing.assert_array_equal(stage2[path], start[path], err_msg=path)
    model.save(tmp_path / "finetuned.keras")
    code, out, err = run_cli("verify", tmp_path / "finetuned.keras", "--baseline", mobilenet / "imported.keras",
                             "--allow-unfrozen", "block_16_*", "--checks", "drift,train-step")
    assert code == 0, out + err
    assert "✓ drift" in out and "unfrozen since the baseline" in out


@pytest.mark.slow
def test_the_fine_tuning_example_runs_end_to_end(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "finetune.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stage 1: the backbone's 104 BatchNormalization statistics unchanged" in proc.stdout
    assert "drift check passed" in proc.stdout
    assert (tmp_path / "serving" / "saved_model.pb").exists()


# -- every backend ------------------------------------------------------------------
BACKEND_TRAINING = """
import json, sys
import numpy as np, keras, mwconv
from mwconv import layers as ml
from mwconv.callbacks import FrozenGuard

def values(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights}

def fit(model, seed):
    rng = np.random.default_rng(seed)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    model.fit(rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 2)).astype("float32"),
              epochs=2, batch_size=8, verbose=0, callbacks=[FrozenGuard(every_n_steps=1)])

keras.utils.set_random_seed(0)
inp = keras.Input((6,), name="x")
h = ml.MixedDense(8, frozen_mask=np.eye(6, 8, dtype=bool), name="masked")(inp)
h = ml.MixedDense(8, adapter_rank=2, frozen=["bias"], name="lora")(h)
h = ml.MixedBatchNormalization(frozen=["gamma", "beta"], name="bn")(h)
model = keras.Model(inp, keras.layers.Dense(2, name="head")(h))
for v in model.weights:
    if v.dtype != "bool" and "adapter_b" not in v.path:
        v.assign(np.random.default_rng(1).uniform(0.5, 1.5, v.shape).astype("float32"))
start = values(model)
fit(model, 2)
stage1 = values(model)
mwconv.set_trainable(model, train=["bn/*"])
fit(model, 3)
stage2 = values(model)
moved = lambda a, b: sorted(p for p in a if not np.array_equal(a[p], b[p]))
print(json.dumps({"backend": keras.backend.backend(), "stage1": moved(start, stage1), "stage2": moved(stage1, stage2)}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_training_keeps_frozen_parts_under_every_backend(backend):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (the test extra brings jax; pip install torch==2.13.0 for torch)")
    proc = subprocess.run([sys.executable, "-c", BACKEND_TRAINING], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["backend"] == backend
    # stage 1: the mask's trainable companion, the adapters and the head train; the frozen
    # kernels, the frozen bias and the frozen BatchNormalization (statistics included) stay
    assert doc["stage1"] == ["head/bias", "head/kernel", "lora/kernel_adapter_a", "lora/kernel_adapter_b",
                             "masked/bias", "masked/kernel_trainable"]
    # stage 2: the unfrozen BatchNormalization trains and updates its statistics
    assert {"bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"} <= set(doc["stage2"])
    assert not {"masked/kernel", "lora/kernel", "lora/bias"} & set(doc["stage2"])


def test_update_statistics_on_a_layer_without_statistics_is_refused():
    layer = ml.MixedDense(3, frozen=["kernel"], update_statistics=True, name="d")
    with pytest.raises(ValueError, match=r"MixedDense 'd': `update_statistics` applies to layers with moving "
                                         r"statistics .* Received: update_statistics=True"):
        layer.build((None, 4))
    with pytest.raises(ValueError, match=r"expected `update_statistics` to be True or False. Received: "
                                         r"update_statistics='yes'"):
        ml.MixedBatchNormalization(update_statistics="yes")


def test_set_trainable_opts_a_frozen_layer_in_and_the_save_keeps_it(tmp_path, imported_cnn):
    model = mwconv.load_model(imported_cnn / "imported.keras")
    change = mwconv.set_trainable(model, update_statistics=["bn"])
    assert change.statistics == {"bn": "opted-in"} and change.trained == [] and change.frozen == []
    model.save(tmp_path / "m.keras")
    again = mwconv.load_model(tmp_path / "m.keras")
    before = weights_of(again)
    fit(again, *data())
    after = weights_of(again)
    assert not np.array_equal(after["bn/moving_mean"], before["bn/moving_mean"])
    np.testing.assert_array_equal(after["bn/gamma"], before["bn/gamma"])
    np.testing.assert_array_equal(after["bn2/moving_mean"], before["bn2/moving_mean"])
    with pytest.raises(UsageError, match=r"update_statistics \['conv'\] matches no layer with moving statistics"):
        mwconv.set_trainable(model, update_statistics=["conv"])
