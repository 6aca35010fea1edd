"""Real architectures written by tf-keras 2.x, as users have them: whole-model
``.h5`` files from ``model.save`` and weights-only files from ``save_weights``.

Every model is built by tf-keras itself (``tf_keras.applications`` at small
inputs with ``weights=None``, and hand-written RNN, text and nested models),
then its weights are perturbed so BatchNorm statistics and biases are not
their trivial initial values.
"""

import numpy as np

# name -> (builder name, input shape without the batch axis)
APPLICATIONS = {
    "mobilenet": ("MobileNet", (32, 32, 3)),
    "mobilenet_v2": ("MobileNetV2", (32, 32, 3)),
    "mobilenet_v3_small": ("MobileNetV3Small", (32, 32, 3)),
    "mobilenet_v3_large": ("MobileNetV3Large", (32, 32, 3)),
    "resnet50": ("ResNet50", (32, 32, 3)),
    "resnet50_v2": ("ResNet50V2", (32, 32, 3)),
    "densenet121": ("DenseNet121", (32, 32, 3)),
    "efficientnet_b0": ("EfficientNetB0", (32, 32, 3)),
    "efficientnet_v2_b0": ("EfficientNetV2B0", (32, 32, 3)),
    "xception": ("Xception", (71, 71, 3)),
    "inception_v3": ("InceptionV3", (75, 75, 3)),
    "nasnet_mobile": ("NASNetMobile", (32, 32, 3)),
    "convnext_tiny": ("ConvNeXtTiny", (32, 32, 3)),
}


def _tfk():
    from mwconv._quiet import import_quietly

    return import_quietly("tf_keras")


def application(name):
    tfk = _tfk()
    builder, shape = APPLICATIONS[name]
    return getattr(tfk.applications, builder)(weights=None, input_shape=shape, classes=10)


def lstm_text():
    tfk = _tfk()
    L = tfk.layers
    inp = tfk.Input((12,), dtype="int32", name="tokens")
    x = L.Embedding(50, 8, name="embed")(inp)
    x = L.LSTM(16, return_sequences=True, name="lstm")(x)
    x = L.GRU(8, name="gru")(x)
    return tfk.Model(inp, L.Dense(3, name="head")(x), name="rnn_text")


def bidirectional():
    tfk = _tfk()
    L = tfk.layers
    inp = tfk.Input((10, 6), name="seq")
    x = L.Bidirectional(L.LSTM(8, return_sequences=True), name="bi")(inp)
    x = L.Bidirectional(L.GRU(4), name="bi_gru")(x)
    return tfk.Model(inp, L.Dense(2, name="out")(x))


def time_distributed():
    tfk = _tfk()
    L = tfk.layers
    inp = tfk.Input((5, 16, 16, 3), name="frames")
    x = L.TimeDistributed(L.Conv2D(4, 3, activation="relu"), name="td_conv")(inp)
    x = L.TimeDistributed(L.BatchNormalization(), name="td_bn")(x)
    x = L.TimeDistributed(L.GlobalAveragePooling2D(), name="td_pool")(x)
    x = L.SimpleRNN(6, name="rnn")(x)
    return tfk.Model(inp, L.Dense(2, name="out")(x))


def conv1d_text():
    tfk = _tfk()
    L = tfk.layers
    inp = tfk.Input((20,), dtype="int32", name="ids")
    x = L.Embedding(100, 12, name="emb")(inp)
    x = L.Conv1D(16, 3, padding="same", activation="relu", name="c1")(x)
    x = L.SeparableConv1D(16, 3, name="sep")(x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.GlobalMaxPooling1D(name="pool")(x)
    return tfk.Model(inp, L.Dense(4, activation="softmax", name="cls")(x))


def named_sequential():
    tfk = _tfk()
    L = tfk.layers
    return tfk.Sequential([tfk.Input((8,)), L.Dense(16, activation="relu", name="fc1"),
                           L.BatchNormalization(name="bn1"), L.Dropout(0.1), L.Dense(3, name="fc2")], name="mlp")


def sequential_inside():
    tfk = _tfk()
    L = tfk.layers
    block = tfk.Sequential([tfk.Input((16, 16, 3)), L.Conv2D(8, 3, name="conv"), L.BatchNormalization(name="bn"),
                            L.ReLU(name="relu")], name="block")
    inp = tfk.Input((16, 16, 3), name="image")
    x = block(inp)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tfk.Model(inp, L.Dense(5, name="logits")(x), name="outer")


def transfer():
    """A MobileNetV2 backbone as a nested model on a new input, and a new head (a nested Sequential)."""
    tfk = _tfk()
    L = tfk.layers
    base = tfk.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    head = tfk.Sequential([L.Dense(16, activation="relu", name="fc"), L.Dense(4, name="out")], name="head")
    inp = tfk.Input((32, 32, 3), name="image")
    x = base(inp, training=False)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return tfk.Model(inp, head(x), name="transfer")


CUSTOM = {"lstm_text": lstm_text, "bidirectional": bidirectional, "time_distributed": time_distributed,
          "conv1d_text": conv1d_text, "named_sequential": named_sequential,
          "sequential_inside": sequential_inside, "transfer": transfer}
NAMES = list(APPLICATIONS) + list(CUSTOM)


def build(name):
    _tfk().utils.set_random_seed(0)       # the same weights every run
    return application(name) if name in APPLICATIONS else CUSTOM[name]()


def perturb(model, seed=0):
    """Give every weight non-trivial values; variances stay positive."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = w.numpy()
        if "variance" in w.name:
            w.assign(rng.uniform(0.5, 1.5, value.shape).astype(value.dtype))
        elif value.dtype.kind == "f":
            w.assign((value + rng.normal(0, 0.05, value.shape)).astype(value.dtype))


def sample_inputs(model, batch=2, seed=1):
    rng = np.random.default_rng(seed)
    feeds = []
    for t in model.inputs:
        shape = (batch,) + tuple(t.shape[1:])
        if t.dtype.is_integer:
            feeds.append(rng.integers(0, 10, shape).astype(t.dtype.as_numpy_dtype))
        else:
            feeds.append(rng.uniform(-1, 1, shape).astype("float32"))
    return feeds


def write(name, folder):
    """Write NAME.h5 (whole model) and NAME.weights.h5-style legacy weights; return
    (h5 path, weights path, inputs, expected outputs)."""
    model = build(name)
    perturb(model)
    h5 = folder / f"{name}.h5"
    weights = folder / f"{name}_weights.h5"
    model.save(h5)
    model.save_weights(weights)
    feeds = sample_inputs(model)
    out = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    return h5, weights, feeds, np.asarray(out)
