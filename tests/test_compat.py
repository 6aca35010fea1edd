"""The framework internals behind ``mwconv._compat``: each one is called on a real model and
checked for what mwconv relies on, so a release that moves one fails here, naming it, before
it fails anywhere else. Patches are gone after their block; the caller's model is unchanged."""

import ast
import os

import keras
import numpy as np
import pytest

from mwconv import _compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _moved(internal):
    return f"Keras/TensorFlow moved {internal}: update mwconv/_compat.py"


@pytest.fixture(scope="module")
def nested():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d"),
                              keras.layers.BatchNormalization(name="bn")], name="inner")
    inp = keras.Input((3,), name="x")
    out = keras.layers.Dense(2, name="head")(inner(inp))
    return keras.Model({"x": inp}, out)


def test_layers_and_their_own_variables(nested):
    names = [layer.name for layer in _compat.flatten_layers(nested, include_self=False)]
    assert names[:3] == ["x", "inner", "d"] or set(names) >= {"inner", "d", "bn", "head"}, \
        _moved("Layer._flatten_layers")
    bn = nested.get_layer("inner").get_layer("bn")
    assert [v.name for v in _compat.own_trainable_variables(bn)] == ["gamma", "beta"], \
        _moved("Layer._trainable_variables")
    assert [v.name for v in _compat.own_non_trainable_variables(bn)] == ["moving_mean", "moving_variance"], \
        _moved("Layer._non_trainable_variables")
    bn.trainable = False                        # the public flag empties trainable_weights ...
    assert bn.trainable_weights == [] and len(_compat.own_trainable_variables(bn)) == 2   # ... not this
    bn.trainable = True
    assert _compat.has_post_build_hook(), _moved("Layer._post_build")


def test_flags_and_paths_set_in_place():
    layer = keras.layers.Dense(2, name="d")
    layer.build((None, 3))
    _compat.set_layer_trainable_flag(layer, False)
    assert layer.trainable is False and layer.kernel.trainable is True, _moved("Layer._trainable")
    _compat.set_layer_trainable_flag(layer, True)
    _compat.set_variable_path(layer.kernel, "d/kernel")
    assert layer.kernel.path == "d/kernel", _moved("Variable._path")
    if keras.backend.backend() == "tensorflow":
        layer.kernel.trainable = False
        _compat.set_backend_trainable_flag(layer.kernel, False)
        assert layer.kernel.value.trainable is False, _moved("Variable._value / tf.Variable._trainable")


def test_model_structure(nested):
    assert isinstance(_compat.inputs_struct(nested), dict), _moved("Functional._inputs_struct")
    assert _compat.producing_layer(nested.outputs[0]).name == "head", _moved("KerasTensor._keras_history")


def test_variables_start_as_zeros_only_inside_the_block():
    cls = keras.Variable
    before = cls.__dict__.get("_initialize_with_initializer")
    with _compat.variables_start_as_zeros(keras):
        inside = keras.layers.Dense(3, kernel_initializer="ones")
        inside.build((None, 2))
    after = keras.layers.Dense(3, kernel_initializer="ones")
    after.build((None, 2))
    assert np.all(inside.kernel.numpy() == 0), _moved("Variable._initialize_with_initializer")
    assert np.all(after.kernel.numpy() == 1), "the patch outlived its block"
    assert cls.__dict__.get("_initialize_with_initializer") is before


def test_object_sharing_scope_builds_a_shared_layer_once():
    shared = keras.layers.Dense(2, name="shared")
    inp = keras.Input((2,), name="x")
    model = keras.Model(inp, shared(shared(inp)))
    config = keras.saving.serialize_keras_object(model)
    with _compat.object_sharing_scope():
        rebuilt = keras.saving.deserialize_keras_object(config)
    assert [layer.name for layer in rebuilt.layers] == ["x", "shared"]


def test_grouped_convolution_patch_is_gone_after_its_block():
    tf = pytest.importorskip("tensorflow")
    from keras.src.backend.tensorflow import nn as tf_nn
    original = tf_nn.conv
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 4)).astype("float32")
    kernel = np.random.default_rng(1).normal(size=(3, 3, 2, 4)).astype("float32")
    expected = np.asarray(keras.ops.conv(x, kernel))
    with _compat.plain_grouped_convolutions(tf):
        assert tf_nn.conv is not original, _moved("keras.src.backend.tensorflow.nn.conv")
        np.testing.assert_allclose(np.asarray(keras.ops.conv(x, kernel)), expected, atol=1e-5)
    assert tf_nn.conv is original


def test_saving_a_saved_model_leaves_the_callers_variables_as_they_were(tmp_path, nested):
    pytest.importorskip("tensorflow")
    from mwconv.convert.exporter import export

    names = [v.value.name for v in nested.weights]
    result = export(nested, "saved_model", tmp_path / "sm")
    assert result.report.ok, result.report.format()
    assert [v.value.name for v in nested.weights] == names, "the export renamed the caller's variables"
    import tensorflow as tf
    stored = {v.name for v in tf.saved_model.load(str(tmp_path / "sm")).variables}
    assert f"{nested.weights[0].path}:0" in stored, _moved("tf.Variable._handle_name")


def test_tf_keras_safe_mode_refuses_bytecode():
    from mwconv._quiet import import_quietly
    tfk = import_quietly("tf_keras")
    inp = tfk.Input((2,))
    config = tfk.Model(inp, tfk.layers.Lambda(lambda t: t * 2)(inp)).to_json()
    with _compat.tf_keras_safe_mode(), pytest.raises(ValueError, match="Lambda"):
        tfk.models.model_from_json(config)


def test_npy_header_of_format_3(tmp_path):
    np.lib.format.write_array(open(tmp_path / "a.npy", "wb"), np.zeros((2, 3), "<f4"), version=(3, 0))
    with open(tmp_path / "a.npy", "rb") as f:
        version = np.lib.format.read_magic(f)
        assert _compat.read_npy_header(f, version) == ((2, 3), False, np.dtype("<f4"))


def test_no_module_but_compat_reaches_into_a_framework():
    """Private framework names appear in mwconv/_compat.py only (the mixed layers' override of
    the _post_build hook aside)."""
    names = {"_flatten_layers", "_trainable_variables", "_non_trainable_variables", "_trainable", "_path",
             "_handle_name", "_initialize_with_initializer", "_inputs_struct", "_keras_history",
             "_convert_data_format", "_read_array_header", "_value", "__internal__"}
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "mwconv")):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or path.endswith("_compat.py"):
                continue
            tree = ast.parse(open(path, encoding="utf8").read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in names and not (
                        isinstance(node.value, ast.Name) and node.value.id == "self"):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} .{node.attr}")
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)          # getattr(x, "_name")
                        and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) > 1
                        and isinstance(node.args[1], ast.Constant) and node.args[1].value in names):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} '{node.args[1].value}'")
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[:2] in (
                        ["keras", "src"], ["tf_keras", "src"]):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} from {node.module}")
    assert offenders == []


def test_functional_classes_and_weights_file_keys(nested, tmp_path):
    import h5py

    class Sub(keras.Model):
        def call(self, x):
            return x

    assert _compat.is_functional(nested) and not _compat.is_functional(Sub()), \
        _moved("keras.src.models.functional.Functional")
    keys = _compat.weights_file_keys(nested)
    nested.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5") as f:
        for v in nested.weights:                 # the same dataset, holding the same values
            np.testing.assert_array_equal(f[keys[id(v)]][()], np.asarray(v.numpy()),
                                          err_msg=_moved("saving_lib._save_state / H5IOStore"))
    assert sorted(keys[id(v)] for v in nested.weights)[0] == "layers/dense/vars/0"


def test_an_allocation_limit_stops_a_build_before_its_memory():
    with _compat.allocation_limit(keras, 10_000):
        keras.layers.Dense(10).build((None, 10))                 # 440 bytes: built
        with pytest.raises(_compat.AllocationExceeded) as caught:
            keras.layers.Embedding(10**9, 64).build((None, 4))   # 256 GB: refused before allocating
    assert caught.value.allocated == 10**9 * 64 * 4 + 440 and caught.value.limit == 10_000
    keras.layers.Embedding(3000, 4).build((None, 4))             # the limit is gone after the block


def test_add_broadcasts_as_numpy_does():
    a = np.arange(8, dtype="float32").reshape(2, 2, 2)
    column = np.array([[10.0], [20.0]], "float32")
    np.testing.assert_array_equal(np.asarray(_compat.add(a, column)), a + column)
    np.testing.assert_array_equal(np.asarray(_compat.add(column, a)), a + column)
