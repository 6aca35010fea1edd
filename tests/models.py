"""Target model factories used through ``--model tests/models.py:NAME``."""

import keras


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
