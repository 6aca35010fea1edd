"""Target model factories used through ``--model tests/models.py:NAME``, and the
PyTorch-side reference of the fixtures' state dict (rules and a NumPy forward pass)."""

import keras
import numpy as np


def reference_net():
    """The Keras 3 twin of the fixtures' tf-keras network (same layer names)."""
    from mwconv.fixtures.builders import _build

    return _build(keras.layers, keras.Model, keras.Input)


def torch_net():
    """The network of the fixtures' PyTorch-style state dict, NHWC, other layer names."""
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="stem_conv")(image)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(7, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(7, activation="relu", name="proj")(x)
    out = keras.layers.Dense(3, name="out")(x)
    return keras.Model(image, out, name="torch_net")


def torch_net_with_head():
    """torch_net plus a new trainable head that the state dict does not have."""
    base = torch_net()
    head = keras.layers.Dense(2, name="new_head")(base.output)
    return keras.Model(base.input, head, name="torch_net_head")


def onnx_net():
    """Matches tests' ONNX graph: conv/bn/relu/pool + embedding mean -> add -> Gemm(transB=1)."""
    image = keras.Input((6, 6, 3), name="image")
    ids = keras.Input((4,), dtype="int32", name="ids")
    x = keras.layers.Conv2D(4, 3, name="conv")(image)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    e = keras.layers.Embedding(10, 4, name="emb")(ids)
    e = keras.layers.GlobalAveragePooling1D()(e)
    h = keras.layers.Add()([x, e])
    out = keras.layers.Dense(4, name="fc")(h)
    return keras.Model({"image": image, "ids": ids}, out, name="onnx_net")


def not_a_model():
    return {"layers": 3}


def broken():
    raise RuntimeError("factory failed on purpose")


def every_kind():
    """Mixed layers of every kind, with every freezing option, in one functional model."""
    import numpy as np

    from mwconv import layers as ml

    rng = np.random.default_rng(3)
    image = keras.Input((8, 8, 3), name="image")
    ids = keras.Input((5,), dtype="int32", name="ids")
    seq = keras.Input((10, 3), name="seq")
    vol = keras.Input((4, 4, 4, 2), name="vol")
    x = ml.MixedConv2D(4, 3, padding="same", frozen=["kernel"], name="conv")(image)
    x = ml.MixedBatchNormalization(frozen=["gamma", "beta"], name="bn")(x)
    x = ml.MixedPReLU(frozen=["alpha"], name="prelu")(x)
    x = ml.MixedDepthwiseConv2D(3, frozen=["kernel", "bias"], name="depthwise")(x)
    x = ml.MixedConv2DTranspose(3, 3, strides=2, frozen=["kernel"], name="deconv")(x)
    x = ml.MixedConv2D(4, 3, adapter_rank=2, name="conv_lora")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool2d")(x)
    e = ml.MixedEmbedding(12, 4, frozen_rows=9, name="emb")(ids)
    e = keras.layers.GlobalAveragePooling1D(name="pool_emb")(e)
    f = ml.FrozenEmbedding(rng.random((12, 3)), name="frozen_emb")(ids)
    f = keras.layers.GlobalAveragePooling1D(name="pool_frozen")(f)
    s = ml.MixedConv1D(4, 3, frozen=["kernel", "bias"], name="conv1d")(seq)
    s = keras.layers.GlobalAveragePooling1D(name="pool1d")(s)
    v = ml.MixedConv3D(2, 2, frozen=["kernel"], name="conv3d")(vol)
    v = keras.layers.GlobalAveragePooling3D(name="pool3d")(v)
    h = keras.layers.Concatenate(name="concat")([x, e, f, s, v])
    h = ml.MixedDense(6, frozen_mask=rng.random((17, 6)) < 0.5, activation="relu", name="masked")(h)
    h = ml.MixedDense(5, adapter_rank=2, name="dense_lora")(h)
    h = ml.FixedBiasLinear(units=4, bias_value=0.1, name="fixed_bias")(h)
    out = ml.CombinedTransformation(units=4, transformation_matrix=rng.random((4, 3)), name="combined")(h)
    model = keras.Model({"image": image, "ids": ids, "seq": seq, "vol": vol}, out, name="every_kind")
    for v in model.weights:  # non-trivial values everywhere, adapters included
        if v.dtype == "bool":
            continue
        value = rng.standard_normal(v.shape).astype("float32") * 0.3
        if v.path.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        v.assign(value)
    return model


TORCH_RULES = """
# PyTorch state dict -> torch_net (fc1 and proj match by name)
conv\\.weight            -> stem_conv/kernel
conv\\.bias              -> stem_conv/bias
bn\\.weight              -> stem_bn/gamma
bn\\.bias                -> stem_bn/beta
bn\\.running_mean       -> stem_bn/moving_mean
bn\\.running_var        -> stem_bn/moving_variance
fc2\\.weight             -> out/kernel
fc2\\.bias               -> out/bias
bn\\.num_batches_tracked -> !ignore
"""


def numpy_torch_net(sd, x_nchw):
    """The state dict's network in plain NumPy, PyTorch conventions (NCHW, y = x W^T + b)."""
    w, b = sd["conv.weight"], sd["conv.bias"]
    n, _, h, wd = x_nchw.shape
    o, _, kh, kw = w.shape
    y = np.zeros((n, o, h - kh + 1, wd - kw + 1), np.float64)
    for i in range(h - kh + 1):
        for j in range(wd - kw + 1):
            patch = x_nchw[:, :, i:i + kh, j:j + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    mean, var = sd["bn.running_mean"][None, :, None, None], sd["bn.running_var"][None, :, None, None]
    y = (y - mean) / np.sqrt(var + 1e-5) * sd["bn.weight"][None, :, None, None] + sd["bn.bias"][None, :, None, None]
    y = np.maximum(y, 0).mean(axis=(2, 3))
    y = np.maximum(y @ sd["fc1.weight"].T + sd["fc1.bias"], 0)
    y = np.maximum(y @ sd["proj.weight"].T + sd["proj.bias"], 0)
    return y @ sd["fc2.weight"].T + sd["fc2.bias"]
