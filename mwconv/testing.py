"""A contract every mixed layer must meet (like Keras's ``run_layer_test``).

>>> from mwconv.layers import MixedDense                       # doctest: +SKIP
>>> run_mixed_layer_contract(MixedDense(3, frozen=["kernel"]), x, tmp_path,
...                          trainable=["bias"], frozen=["kernel"])

Checks, in order: config round trip; trainable/frozen weight names; one
optimizer step (AdamW with weight decay, so a weight the optimizer can see
moves even where its gradient is zero) leaves every frozen weight and frozen
view bit-identical and changes every trainable one; ``.keras`` save/reload in
safe mode with no custom_objects keeps paths, flags, values and outputs, and
trains the same way; with the TensorFlow backend, ``tf.saved_model.save`` and
reload keep every variable's trainable flag and value.
"""

import os

import keras
import numpy as np


def weights_by_path(model):
    trainable = {id(v) for v in model.trainable_weights}
    return {v.path: (np.array(keras.ops.convert_to_numpy(v.value)), id(v) in trainable) for v in model.weights}


def _views(layer, views):
    return {name: np.array(keras.ops.convert_to_numpy(fn(layer))) for name, fn in (views or {}).items()}


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def train_step_contract(model, layer, x, frozen_views=None, trainable_views=None):
    """One AdamW step; assert frozen things stay bit-identical and trainable ones move."""
    before, fv, tv = weights_by_path(model), _views(layer, frozen_views), _views(layer, trainable_views)
    y = np.asarray(model(x)) if keras.backend.backend() != "torch" else keras.ops.convert_to_numpy(model(x))
    target = np.random.default_rng(1).standard_normal(y.shape).astype("float32")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=0.05, weight_decay=0.1), loss="mse", metrics=[])
    model.train_on_batch(x, target)
    after = weights_by_path(model)
    for path, (value, trainable) in before.items():
        moved = not _same(value, after[path][0])
        if trainable:
            assert moved, f"trainable weight {path} did not change after a training step"
        elif not path.endswith(("moving_mean", "moving_variance")):
            assert not moved, f"frozen weight {path} changed after a training step"
    for name, value in _views(layer, frozen_views).items():
        assert _same(fv[name], value), f"frozen part {name} changed after a training step"
    for name, value in _views(layer, trainable_views).items():
        assert not _same(tv[name], value), f"trainable part {name} did not change after a training step"
    return after


def _short(model, trainable):
    return sorted(p.split("/")[-1] for p, (_, t) in weights_by_path(model).items() if t == trainable)


def run_mixed_layer_contract(layer, x, tmp_dir, *, trainable, frozen, frozen_views=None, trainable_views=None):
    """Run the whole contract on an unbuilt ``layer`` fed with batch ``x``; return the reloaded model."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config, "get_config -> from_config -> get_config is not identical"

    inp = keras.Input(shape=x.shape[1:], dtype=str(x.dtype))
    model = keras.Model(inp, layer(inp))
    assert _short(model, True) == sorted(trainable), f"trainable weights {_short(model, True)} != {sorted(trainable)}"
    assert _short(model, False) == sorted(frozen), f"frozen weights {_short(model, False)} != {sorted(frozen)}"
    assert layer.get_config() == config, "building the layer changed its config"

    train_step_contract(model, layer, x, frozen_views, trainable_views)

    path = os.path.join(str(tmp_dir), f"{layer.name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    a, b = weights_by_path(model), weights_by_path(reloaded)
    assert list(a) == list(b), f"weight paths differ after reload: {list(a)} vs {list(b)}"
    for p in a:
        assert a[p][1] == b[p][1], f"{p}: trainable flag {a[p][1]} came back as {b[p][1]}"
        assert _same(a[p][0], b[p][0]), f"{p}: value changed by the .keras round trip"
    out_a = keras.ops.convert_to_numpy(model(x))
    out_b = keras.ops.convert_to_numpy(reloaded(x))
    assert _same(out_a, out_b), "outputs differ after the .keras round trip"
    reloaded_layer = reloaded.layers[-1]
    assert reloaded_layer.get_config() == layer.get_config()
    train_step_contract(reloaded, reloaded_layer, x, frozen_views, trainable_views)

    if keras.backend.backend() == "tensorflow":
        saved_model_contract(model, os.path.join(str(tmp_dir), f"{layer.name}_saved_model"))
    return reloaded


def saved_model_contract(model, directory):
    """``tf.saved_model.save`` then ``tf.saved_model.load``: every variable keeps its flag and value."""
    import tensorflow as tf

    from mwconv.formats.saved_model import restored_variables

    tf.saved_model.save(model, directory)
    restored = restored_variables(tf.saved_model.load(directory))
    expected = weights_by_path(model)
    missing = sorted(set(expected) - set(restored))
    assert not missing, f"SavedModel lost variables {missing} (it holds {sorted(restored)})"
    for p, (value, trainable) in expected.items():
        v = restored[p]
        assert v.trainable == trainable, f"{p}: trainable={trainable} came back from the SavedModel as {v.trainable}"
        assert _same(value, v.numpy()), f"{p}: value changed by the SavedModel round trip"
