"""Every mixed layer passes the contract of mwconv.testing on real Keras."""

import ast
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from mwconv import layers as ml
from mwconv.testing import run_mixed_layer_contract

RNG = np.random.default_rng(0)


def x_of(*shape):
    return RNG.standard_normal(shape).astype("float32")


def ids(n, vocab, length=5):
    return RNG.integers(0, vocab, size=(n, length)).astype("int32")


def effective(attr):
    return lambda layer: getattr(layer, attr)


MASK = RNG.random((5, 3)) < 0.5
CONV_MASK = RNG.random((3, 3, 2, 4)) < 0.5

CASES = {
    # id: (layer factory, input, trainable names, frozen names, frozen views, trainable views)
    "dense-frozen-kernel": (lambda: ml.MixedDense(3, frozen=["kernel"]), x_of(6, 5), ["bias"], ["kernel"], None, None),
    "dense-frozen-bias": (lambda: ml.MixedDense(3, frozen="bias"), x_of(6, 5), ["kernel"], ["bias"], None, None),
    "dense-mask": (lambda: ml.MixedDense(3, frozen_mask=MASK), x_of(6, 5),
                   ["bias", "kernel_trainable"], ["kernel", "kernel_frozen_mask"],
                   {"kernel[mask]": lambda l: keras.ops.convert_to_numpy(l.kernel)[MASK]},
                   {"kernel[~mask]": lambda l: keras.ops.convert_to_numpy(l.kernel)[~MASK]}),
    "dense-adapter": (lambda: ml.MixedDense(3, adapter_rank=2), x_of(6, 5),
                      ["bias", "kernel_adapter_a", "kernel_adapter_b"], ["kernel"], None, {"kernel": effective("kernel")}),
    "conv1d": (lambda: ml.MixedConv1D(4, 3, frozen=["kernel", "bias"], activation="relu"), x_of(4, 9, 2),
               [], ["bias", "kernel"], None, None),
    "conv1d-adapter": (lambda: ml.MixedConv1D(4, 3, adapter_rank=2), x_of(4, 9, 2),
                       ["bias", "kernel_adapter_a", "kernel_adapter_b"], ["kernel"], None, None),
    "conv2d-mask": (lambda: ml.MixedConv2D(4, 3, frozen_mask=CONV_MASK), x_of(3, 7, 9, 2),
                    ["bias", "kernel_trainable"], ["kernel", "kernel_frozen_mask"],
                    {"kernel[mask]": lambda l: keras.ops.convert_to_numpy(l.kernel)[CONV_MASK]}, None),
    "conv2d-adapter": (lambda: ml.MixedConv2D(4, 3, adapter_rank=3, adapter_alpha=6.0), x_of(3, 7, 9, 2),
                       ["bias", "kernel_adapter_a", "kernel_adapter_b"], ["kernel"], None, None),
    "conv3d": (lambda: ml.MixedConv3D(2, 2, frozen=["kernel"]), x_of(2, 5, 4, 3, 2), ["bias"], ["kernel"], None, None),
    "conv2d-transpose": (lambda: ml.MixedConv2DTranspose(3, 3, strides=2, frozen=["kernel"]), x_of(2, 5, 4, 2),
                         ["bias"], ["kernel"], None, None),
    "depthwise": (lambda: ml.MixedDepthwiseConv2D(3, depth_multiplier=2, frozen=["kernel"]), x_of(2, 7, 6, 3),
                  ["bias"], ["kernel"], None, None),
    "embedding-frozen": (lambda: ml.MixedEmbedding(11, 4, frozen=["embeddings"]), ids(6, 11), [], ["embeddings"],
                         None, None),
    "embedding-rows": (lambda: ml.MixedEmbedding(11, 4, frozen_rows=8), np.tile(np.arange(11, dtype="int32"), (2, 1)),
                       ["embeddings_trainable_rows"], ["embeddings"],
                       {"rows<8": lambda l: keras.ops.convert_to_numpy(l.embeddings)[:8]},
                       {"rows>=8": lambda l: keras.ops.convert_to_numpy(l.embeddings)[8:]}),
    "embedding-adapter": (lambda: ml.MixedEmbedding(11, 4, adapter_rank=2), ids(6, 11),
                          ["embeddings_adapter_a", "embeddings_adapter_b"], ["embeddings"], None, None),
    "batchnorm": (lambda: ml.MixedBatchNormalization(frozen=["gamma", "beta"]), x_of(8, 3),
                  [], ["beta", "gamma", "moving_mean", "moving_variance"], None, None),
    "batchnorm-beta": (lambda: ml.MixedBatchNormalization(frozen=["beta"]), x_of(8, 3),
                       ["gamma"], ["beta", "moving_mean", "moving_variance"], None, None),
    "prelu": (lambda: ml.MixedPReLU(frozen=["alpha"]), x_of(5, 4), [], ["alpha"], None, None),
    "prelu-trainable": (lambda: ml.MixedPReLU(), x_of(5, 4), ["alpha"], [], None, None),
    # generated counterparts, and weights below a layer's sub-layers
    "einsum-dense": (lambda: ml.MIXED_FOR_STOCK["EinsumDense"]("ab,bc->ac", output_shape=4, bias_axes="c",
                                                                frozen=["kernel"]), x_of(4, 6), ["bias"], ["kernel"],
                     None, None),
    "lstm-cell-kernel": (lambda: ml.MIXED_FOR_STOCK["LSTM"](4, frozen=["lstm_cell/kernel"]), x_of(3, 5, 2),
                         ["bias", "recurrent_kernel"], ["kernel"], None, None),
    "layer-scale": (lambda: ml.LayerScale(0.5, 4, frozen=["gamma"]), x_of(3, 4), [], ["gamma"], None, None),
    # the seed article's layers, constructed exactly as in the article
    "seed-fixed-bias-linear": (lambda: ml.FixedBiasLinear(units=3, bias_value=0.1), x_of(4, 6),
                               ["kernel"], ["bias"], None, None),
    "seed-frozen-embedding": (lambda: ml.FrozenEmbedding(np.random.rand(5, 10)), ids(4, 5, 3),
                              [], ["embeddings"], None, None),
    "seed-combined-transformation": (
        lambda: ml.CombinedTransformation(units=2, transformation_matrix=[[0.1, 0.2], [0.3, 0.4]]),
        np.abs(x_of(4, 3)), ["kernel"], ["transformation"], None, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layer_contract(case, tmp_path):
    factory, x, trainable, frozen, fviews, tviews = CASES[case]
    run_mixed_layer_contract(factory(), x, tmp_path, trainable=trainable, frozen=frozen,
                             frozen_views=fviews, trainable_views=tviews)


def test_fixed_bias_survives_reload_with_its_value(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, ml.FixedBiasLinear(units=3, bias_value=0.1)(inp))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    bias = keras.ops.convert_to_numpy(reloaded.layers[-1].bias)
    np.testing.assert_array_equal(bias, np.full(3, 0.1, "float32"))
    assert reloaded.layers[-1].get_config()["bias_value"] == 0.1


def test_frozen_embedding_keeps_matrix_out_of_config():
    matrix = np.random.rand(5, 10)
    layer = ml.FrozenEmbedding(matrix)
    config = layer.get_config()
    assert "embedding_matrix" not in config and (config["input_dim"], config["output_dim"]) == (5, 10)
    out = keras.ops.convert_to_numpy(layer(np.array([[4, 0]], "int32")))
    np.testing.assert_array_equal(out[0], matrix[[4, 0]].astype("float32"))
    kept = matrix.copy()
    layer.embeddings.assign(np.zeros((5, 10), "float32"))
    np.testing.assert_array_equal(matrix, kept)  # the caller's matrix is never shared or mutated


def test_combined_transformation_math():
    layer = ml.CombinedTransformation(units=2, transformation_matrix=[[0.1, 0.2], [0.3, 0.4]])
    x = np.array([[1.0, -2.0, 0.5]], "float32")
    out = keras.ops.convert_to_numpy(layer(x))
    k = keras.ops.convert_to_numpy(layer.kernel)
    expected = np.maximum((x @ k) @ np.array([[0.1, 0.2], [0.3, 0.4]], "float32"), 0)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("stock_cls,mixed_cls,kwargs,shape", [
    (keras.layers.Dense, ml.MixedDense, {"units": 3}, (2, 5)),
    (keras.layers.Conv2D, ml.MixedConv2D, {"filters": 4, "kernel_size": 3}, (2, 6, 6, 2)),
    (keras.layers.BatchNormalization, ml.MixedBatchNormalization, {}, (4, 3)),
    (keras.layers.Embedding, ml.MixedEmbedding, {"input_dim": 7, "output_dim": 3}, None),
    (keras.layers.DepthwiseConv2D, ml.MixedDepthwiseConv2D, {"kernel_size": 3}, (2, 6, 6, 2)),
    (keras.layers.Conv2DTranspose, ml.MixedConv2DTranspose, {"filters": 2, "kernel_size": 3}, (2, 4, 4, 3)),
    (keras.layers.PReLU, ml.MixedPReLU, {}, (2, 5)),
])
def test_weights_file_interchangeable_with_stock_layer(stock_cls, mixed_cls, kwargs, shape, tmp_path):
    x = ids(2, 7) if shape is None else x_of(*shape)

    def model_of(layer):
        inp = keras.Input(shape=x.shape[1:], dtype=str(x.dtype))
        return keras.Model(inp, layer(inp))

    frozen = [w.name for w in model_of(stock_cls(**kwargs)).layers[-1].weights][:1]
    stock, mixed = model_of(stock_cls(**kwargs)), model_of(mixed_cls(frozen=frozen, **kwargs))
    stock.save_weights(tmp_path / "stock.weights.h5")
    mixed.load_weights(tmp_path / "stock.weights.h5")
    for a, b in zip(sorted(stock.weights, key=lambda v: v.name), sorted(mixed.weights, key=lambda v: v.name)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(stock(x)), keras.ops.convert_to_numpy(mixed(x)))
    # and the reverse direction
    mixed2 = model_of(mixed_cls(frozen=frozen, **kwargs))
    mixed2.save_weights(tmp_path / "mixed.weights.h5")
    stock2 = model_of(stock_cls(**kwargs))
    stock2.load_weights(tmp_path / "mixed.weights.h5")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(stock2(x)), keras.ops.convert_to_numpy(mixed2(x)))


@pytest.mark.parametrize("make,message", [
    (lambda: ml.MixedDense(3, frozen=["kernal"])(x_of(2, 4)), r"frozen=\['kernal'\].*weights are: \['kernel', 'bias'\]"),
    (lambda: ml.MixedDense(3, frozen_mask=np.ones((5, 3), bool))(x_of(2, 4)),
     r"frozen_mask.*shape \(4, 3\).*Received: shape \(5, 3\)"),
    (lambda: ml.MixedDense(3, frozen_mask=np.ones((4, 3))), r"boolean array.*float64"),
    (lambda: ml.MixedEmbedding(10, 4, frozen_rows=10), r"frozen_rows.*\[1, 9\].*Received: frozen_rows=10"),
    (lambda: ml.MixedEmbedding(10, 4, frozen_rows=-1), r"Received: frozen_rows=-1"),
    (lambda: ml.MixedDense(3, adapter_rank=0), r"adapter_rank.*positive integer.*Received: adapter_rank=0"),
    (lambda: ml.MixedDense(3, adapter_rank=2, frozen_mask=np.ones((4, 3), bool)), r"one of frozen_mask, adapter_rank"),
    (lambda: ml.MixedDense(3, frozen=[1]), r"list of weight names.*Received: frozen=\[1\]"),
    (lambda: ml.CombinedTransformation(units=3, transformation_matrix=[[0.1, 0.2], [0.3, 0.4]]),
     r"shape \(units, k\) = \(3, k\).*Received: shape \(2, 2\)"),
    (lambda: ml.FrozenEmbedding(np.ones(5)), r"2-D numeric matrix.*shape \(5,\)"),
    (lambda: ml.FixedBiasLinear(units=0), r"units.*positive integer.*Received: units=0"),
])
def test_bad_arguments_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


LAYER_FILES = ["__init__.py", "mixin.py", "mixed.py", "seed.py", "onnx_ops.py"]


def test_layers_do_not_import_tensorflow():
    folder = os.path.dirname(ml.__file__)
    for name in LAYER_FILES:
        with open(os.path.join(folder, name), encoding="utf8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "tensorflow" for a in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "tensorflow", name
            elif isinstance(node, ast.Name):
                assert node.id != "tf", f"{name}: uses tf.* at line {node.lineno}"


TORCH_SCRIPT = textwrap.dedent("""
    import os, sys, tempfile
    os.environ["KERAS_BACKEND"] = "torch"
    import keras, numpy as np
    assert keras.backend.backend() == "torch"
    from mwconv import layers as ml
    from mwconv.testing import run_mixed_layer_contract
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    cases = [
        (ml.MixedDense(3, frozen=["kernel"]), x, ["bias"], ["kernel"]),
        (ml.MixedDense(3, adapter_rank=2), x, ["bias", "kernel_adapter_a", "kernel_adapter_b"], ["kernel"]),
        (ml.FixedBiasLinear(units=3, bias_value=0.1), x, ["kernel"], ["bias"]),
        (ml.CombinedTransformation(units=2, transformation_matrix=[[0.1, 0.2], [0.3, 0.4]]), x,
         ["kernel"], ["transformation"]),
        (ml.MixedEmbedding(11, 4, frozen_rows=8), np.tile(np.arange(11, dtype="int32"), (2, 1)),
         ["embeddings_trainable_rows"], ["embeddings"]),
        (ml.MixedDense(3, frozen_mask=np.eye(5, 3, dtype=bool)), x, ["bias", "kernel_trainable"],
         ["kernel", "kernel_frozen_mask"]),
        (ml.MixedBatchNormalization(frozen=["gamma"]), x, ["beta"], ["gamma", "moving_mean", "moving_variance"]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for layer, data, trainable, frozen in cases:
            run_mixed_layer_contract(layer, data, tmp, trainable=trainable, frozen=frozen)
    print("torch backend: ok", len(cases))
""")


def test_layers_under_torch_backend():
    try:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            pytest.skip("torch is not installed (pip install torch==2.13.0 to run this test)")
    except ImportError:
        pytest.skip("torch is not installed")
    env = dict(os.environ, KERAS_BACKEND="torch")
    proc = subprocess.run([sys.executable, "-c", TORCH_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch backend: ok 7" in proc.stdout


def test_every_builtin_layer_with_weights_has_a_generated_counterpart():
    stock = {name: getattr(keras.layers, name) for name in dir(keras.layers)
             if isinstance(getattr(keras.layers, name), type) and issubclass(getattr(keras.layers, name),
                                                                              keras.layers.Layer)}
    for name in ("LSTM", "GRU", "SimpleRNN", "LSTMCell", "Bidirectional", "TimeDistributed", "MultiHeadAttention",
                 "EinsumDense", "ConvLSTM2D", "SeparableConv2D", "Normalization", "LayerNormalization"):
        mixed = ml.MIXED_FOR_STOCK[name]
        assert mixed.__name__ == name and issubclass(mixed, stock[name]) and issubclass(mixed, ml.MixedWeightsMixin)
        assert keras.saving.get_registered_object(f"mwconv>{name}") is mixed
    assert not any(issubclass(c, keras.Model) for c in ml.MIXED_FOR_STOCK.values())


COMPOSITE = {
    "bidirectional": (lambda: ml.MIXED_FOR_STOCK["Bidirectional"](
        keras.layers.GRU(3), frozen=["forward_gru/gru_cell/kernel", "backward_gru/gru_cell/bias"], name="bi"),
        ["backward_gru/gru_cell/bias", "forward_gru/gru_cell/kernel"]),
    "time-distributed": (lambda: ml.MIXED_FOR_STOCK["TimeDistributed"](keras.layers.Dense(3, name="d"),
                                                                       frozen=["d/kernel"], name="td"), ["d/kernel"]),
    "conv-lstm": (lambda: ml.MIXED_FOR_STOCK["ConvLSTM1D"](2, 3, frozen=["conv_lstm_cell/recurrent_kernel"],
                                                           name="cl"), ["conv_lstm_cell/recurrent_kernel"]),
}


@pytest.mark.parametrize("case", list(COMPOSITE))
def test_weights_below_sub_layers_freeze_and_stay_frozen(case, tmp_path):
    """A layer that owns sub-layers freezes weights named by their path below it: Keras's flag,
    the tf.Variable's, a training step, the .keras and SavedModel round trips."""
    import tensorflow as tf

    from mwconv.formats.saved_model import restored_variables
    from mwconv.layers.conversion import stable_paths
    from mwconv.testing import train_step_contract

    make, frozen = COMPOSITE[case]
    layer = make()
    x = x_of(3, 4, 5, 2) if case == "conv-lstm" else x_of(3, 4, 5)
    inp = keras.Input(x.shape[1:])
    model = stable_paths(keras.Model(inp, layer(inp)))
    below = lambda paths: sorted(p.split("/", 1)[1] for p in paths)   # noqa: E731
    assert below(v.path for v in model.weights if not v.trainable) == frozen
    assert all(v.value.trainable == v.trainable for v in model.weights)
    tf.saved_model.save(model, str(tmp_path / "sm"))      # before training: no optimizer state in it
    restored = restored_variables(tf.saved_model.load(str(tmp_path / "sm")))
    assert len(restored) == len(model.weights) and sum(not v.trainable for v in restored.values()) == len(frozen)
    train_step_contract(model, layer, x)
    model.save(tmp_path / "m.keras")
    again = stable_paths(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True))
    assert below(v.path for v in again.weights if not v.trainable) == frozen


def test_multi_head_attention_freezes_one_projection_in_every_backend_flag(tmp_path):
    import tensorflow as tf

    inp = keras.Input((4, 6))
    mha = ml.MIXED_FOR_STOCK["MultiHeadAttention"](num_heads=2, key_dim=3, frozen=["query/kernel", "value/bias"],
                                                   name="mha")
    model = keras.Model(inp, mha(inp, inp))
    frozen = sorted(v.path.split("mha/")[-1] for v in model.weights if not v.trainable)
    assert frozen == ["query/kernel", "value/bias"]
    assert all(v.value.trainable == v.trainable for v in model.weights)   # the tf.Variable agrees
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert sorted(v.path.split("mha/")[-1] for v in again.weights if not v.trainable) == frozen
    tf.saved_model.save(model, str(tmp_path / "sm"))
    from mwconv.formats.saved_model import restored_variables
    restored = restored_variables(tf.saved_model.load(str(tmp_path / "sm")))
    assert sorted(p.split("mha/")[-1] for p, v in restored.items() if not v.trainable) == frozen


def test_a_frozen_name_the_layer_lacks_is_refused_listing_the_real_ones():
    inp = keras.Input((3, 2))
    with pytest.raises(ValueError, match=r"unknown: \['cell/kernel'\].*lstm_cell/kernel"):
        ml.MIXED_FOR_STOCK["LSTM"](4, frozen=["cell/kernel"])(inp)
