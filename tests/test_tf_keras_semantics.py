"""A tf-keras name means tf-keras's numbers after the import (``mwconv.legacy.semantics``).

Differential tests: tf-keras and the translation run on the same inputs.

* every activation tf-keras can name, through the translation of its name;
* every layer in the sweep below, built by tf-keras 2.x with its defaults (and the arguments
  known to differ), written by ``model.save``, imported with no ``--model`` and run against
  tf-keras itself;
* every layer class of tf-keras's public API that Keras 3 lacks is translated or refused
  with its reason, and the layers defined inside ``tf_keras.applications`` are translated.
"""

import json

import numpy as np
import pytest

from tests.helpers import run_cli
from tests.tfkeras_zoo import perturb


def _tf():
    from mwconv._quiet import import_quietly
    return import_quietly("tensorflow"), import_quietly("tf_keras")


def test_every_activation_tf_keras_names_gives_tf_keras_numbers():
    import keras

    import mwconv.layers  # noqa: F401  (registers tf_keras_hard_sigmoid)
    from mwconv.legacy.semantics import ACTIVATIONS, activation
    tf, tfk = _tf()
    x = np.linspace(-8, 8, 2001, dtype=np.float32).reshape(3, 667)
    names = [n for n in dir(tfk.activations) if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
             and callable(getattr(tfk.activations, n))]
    assert {"hard_sigmoid", "gelu", "swish", "elu", "selu", "softplus", "relu"} <= set(names)
    for name in names:
        want = np.asarray(tfk.activations.get(name)(tf.constant(x)))
        got = np.asarray(keras.activations.get(activation(name))(x))
        assert np.max(np.abs(got - want)) <= 1e-6, name
        if name not in ACTIVATIONS:      # the ones left as they are mean the same in Keras 3
            assert activation(name) == name
    # the reason the table exists: Keras 3's namesake computes other numbers
    assert float(keras.activations.hard_sigmoid(np.float32(-2.0))) == pytest.approx(1 / 6, abs=1e-6)
    assert float(keras.activations.get(activation("hard_sigmoid"))(np.float32(-2.0))) == pytest.approx(0.1, abs=1e-7)


def _cases():
    _, tfk = _tf()
    L = tfk.layers
    return {
        # layer: (factory, input shape, or "cross"/"self" attention, "two" inputs, "int" ids)
        "ConvLSTM1D": (lambda: L.ConvLSTM1D(4, 3), (5, 8, 3)),          # recurrent_activation hard_sigmoid
        "ConvLSTM2D": (lambda: L.ConvLSTM2D(4, 3, return_sequences=True), (3, 6, 6, 2)),
        "ConvLSTM3D": (lambda: L.ConvLSTM3D(2, 3), (2, 5, 5, 5, 2)),
        "LSTM": (lambda: L.LSTM(4), (5, 3)),
        "LSTM-hard-sigmoid": (lambda: L.LSTM(4, recurrent_activation="hard_sigmoid"), (5, 3)),
        "GRU": (lambda: L.GRU(4), (5, 3)),
        "GRU-reset-before": (lambda: L.GRU(4, reset_after=False), (5, 3)),
        "SimpleRNN": (lambda: L.SimpleRNN(4), (5, 3)),
        "RNN-stacked-cells": (lambda: L.RNN([L.GRUCell(4), L.LSTMCell(3, recurrent_activation="hard_sigmoid")]),
                              (5, 3)),
        "Bidirectional": (lambda: L.Bidirectional(L.LSTM(3)), (5, 2)),
        "Dense-hard-sigmoid": (lambda: L.Dense(4, activation="hard_sigmoid"), (6,)),
        "Activation-hard-sigmoid": (lambda: L.Activation("hard_sigmoid"), (6,)),
        "Dense-gelu": (lambda: L.Dense(4, activation="gelu"), (6,)),
        "LeakyReLU": (lambda: L.LeakyReLU(), (6,)),
        "LeakyReLU-alpha": (lambda: L.LeakyReLU(alpha=0.1), (6,)),
        "ELU": (lambda: L.ELU(alpha=0.5), (6,)),
        "ReLU": (lambda: L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2), (6,)),
        "PReLU": (lambda: L.PReLU(), (6,)),
        "ThresholdedReLU": (lambda: L.ThresholdedReLU(theta=0.3), (6,)),
        "Softmax": (lambda: L.Softmax(), (3, 6)),
        "Softmax-axis": (lambda: L.Softmax(axis=1), (3, 6)),
        "Attention": (lambda: L.Attention(), "cross"),                  # score_mode "dot"
        "Attention-scale": (lambda: L.Attention(use_scale=True), "cross"),
        "Attention-concat": (lambda: L.Attention(score_mode="concat"), "cross"),
        "AdditiveAttention": (lambda: L.AdditiveAttention(), "cross"),
        "MultiHeadAttention": (lambda: L.MultiHeadAttention(2, 4), "cross"),   # query_shape, value= call
        "MultiHeadAttention-self": (lambda: L.MultiHeadAttention(2, 3, value_dim=5), "self"),
        "LayerNormalization": (lambda: L.LayerNormalization(), (4, 6)),
        "BatchNormalization": (lambda: L.BatchNormalization(), (4, 6)),
        "GroupNormalization": (lambda: L.GroupNormalization(2), (4, 6)),
        "UnitNormalization": (lambda: L.UnitNormalization(), (6,)),
        "Normalization": (lambda: L.Normalization(mean=[0.5] * 3, variance=[2.0] * 3), (4, 3)),
        "Normalization-invert": (lambda: L.Normalization(mean=[0.5] * 3, variance=[2.0] * 3, invert=True), (4, 3)),
        "Rescaling": (lambda: L.Rescaling(0.5, 0.1), (4, 3)),
        "Dropout": (lambda: L.Dropout(0.5), (6,)),
        "SpatialDropout1D": (lambda: L.SpatialDropout1D(0.5), (4, 6)),
        "GaussianNoise": (lambda: L.GaussianNoise(0.5), (6,)),
        "GaussianDropout": (lambda: L.GaussianDropout(0.5), (6,)),
        "AlphaDropout": (lambda: L.AlphaDropout(0.5), (6,)),
        "RandomHeight": (lambda: L.RandomHeight(0.3), (4, 4, 3)),
        "RandomWidth": (lambda: L.RandomWidth(0.3), (4, 4, 3)),
        "Resizing": (lambda: L.Resizing(5, 7), (4, 4, 3)),
        "Resizing-nearest": (lambda: L.Resizing(5, 7, interpolation="nearest"), (4, 4, 3)),
        "UpSampling2D-bilinear": (lambda: L.UpSampling2D(interpolation="bilinear"), (4, 4, 3)),
        "CenterCrop": (lambda: L.CenterCrop(2, 2), (4, 4, 3)),
        "Conv2DTranspose": (lambda: L.Conv2DTranspose(3, 3, strides=2), (4, 4, 2)),
        "SeparableConv2D": (lambda: L.SeparableConv2D(3, 3), (6, 6, 2)),
        "Conv1D-causal": (lambda: L.Conv1D(3, 3, padding="causal", dilation_rate=2), (8, 2)),
        "AveragePooling2D-same": (lambda: L.AveragePooling2D(padding="same"), (5, 5, 2)),
        "Dot-normalize": (lambda: L.Dot(axes=1, normalize=True), "two"),
        "Embedding": (lambda: L.Embedding(10, 4), "int"),
        "CategoryEncoding": (lambda: L.CategoryEncoding(6, output_mode="multi_hot"), "int"),
        "Hashing": (lambda: L.Hashing(5), "int"),
        "Discretization": (lambda: L.Discretization(bin_boundaries=[0.0, 0.5]), (4,)),
    }


CASES = sorted(_cases())


def _model(name, rng):
    """(tf-keras model of one layer on its inputs, feeds)."""
    _, tfk = _tf()
    tfk.utils.set_random_seed(0)
    make, shape = _cases()[name]
    layer = make()
    if shape in ("cross", "self"):
        q = tfk.Input((3, 4), name="q")
        v = q if shape == "self" else tfk.Input((5, 4), name="v")
        if isinstance(layer, tfk.layers.MultiHeadAttention):
            y = layer(q, value=v) if shape == "cross" else layer(q, q)
        else:
            y = layer([q, v])
        inputs = [q] if shape == "self" else [q, v]
        feeds = [rng.normal(size=(2,) + tuple(t.shape[1:])).astype("float32") for t in inputs]
        return tfk.Model(inputs, y), feeds
    if shape == "two":
        a, b = tfk.Input((4,), name="a"), tfk.Input((4,), name="b")
        return tfk.Model([a, b], layer([a, b])), [rng.normal(size=(2, 4)).astype("float32") for _ in range(2)]
    if shape == "int":
        i = tfk.Input((5,), dtype="int32", name="ids")
        return tfk.Model(i, layer(i)), [rng.integers(0, 6, (2, 5)).astype("int32")]
    i = tfk.Input(shape, name="x")
    return tfk.Model(i, layer(i)), [rng.normal(size=(2,) + shape).astype("float32")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("semantics")


@pytest.mark.parametrize("name", CASES)
def test_a_tf_keras_layer_imports_with_tf_keras_numbers(name, folder):
    import mwconv
    model, feeds = _model(name, np.random.default_rng(0))
    perturb(model)
    want = np.asarray(model(feeds if len(feeds) > 1 else feeds[0], training=False))
    path = folder / f"{name}.h5"
    model.save(path)
    imported, _ = mwconv.import_weights(path, output=folder / f"{name}.keras", force=True)
    got = np.asarray(mwconv.load_model(folder / f"{name}.keras")(feeds if len(feeds) > 1 else feeds[0]))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(want).max())))
    assert all(not w.trainable for w in imported.weights)


def test_the_translation_says_what_it_rewrote_for_the_numbers(folder, tmp_path):
    _, tfk = _tf()
    L = tfk.layers
    tfk.utils.set_random_seed(0)
    i = tfk.Input((5, 8, 3), name="frames")
    y = L.ConvLSTM1D(4, 3, name="clstm")(i)
    y = L.LeakyReLU(alpha=0.1, name="leaky")(L.Flatten()(y))
    tfk.Model(i, y).save(tmp_path / "clstm.h5")
    code, out, _ = run_cli("inspect", tmp_path / "clstm.h5", "--json")
    assert code == 0
    translation = json.loads(out)["model"]["translation"]
    line = next(n for n in translation if "to keep tf-keras's numbers" in n)
    assert line == ("2 layers translated to keep tf-keras's numbers: alpha -> negative_slope, "
                    "recurrent_activation: hard_sigmoid -> mwconv>tf_keras_hard_sigmoid")


def test_tf_shape_and_range_position_ids_run_for_any_length(tmp_path):
    """The standard position-embedding idiom, ``tf.range(tf.shape(x)[1])``, on a length only
    known at run time."""
    import mwconv
    tf, tfk = _tf()
    L = tfk.layers
    tfk.utils.set_random_seed(0)
    x = tfk.Input((None,), dtype="int32", name="tokens")
    positions = tf.range(tf.shape(x)[1])
    h = L.Embedding(20, 8, name="tok")(x) + L.Embedding(16, 8, name="pos")(positions)
    model = tfk.Model(x, L.Dense(3, name="head")(h))
    perturb(model)
    model.save(tmp_path / "pos.h5")
    mwconv.import_weights(tmp_path / "pos.h5", output=tmp_path / "pos.keras")
    imported = mwconv.load_model(tmp_path / "pos.keras")
    for length in (5, 11):
        ids = np.random.default_rng(length).integers(0, 20, (2, length)).astype("int32")
        np.testing.assert_allclose(np.asarray(imported(ids)), model(ids).numpy(), rtol=1e-6, atol=1e-6)


def test_inception_resnet_blocks_with_their_custom_scale_layer(tmp_path):
    """tf-keras's own InceptionResNetV2 blocks (``CustomScaleLayer`` lives inside
    tf_keras.applications), at a size a test can afford."""
    import mwconv
    _, tfk = _tf()
    from tf_keras.src.applications import inception_resnet_v2
    inception_resnet_v2.layers = tfk.layers      # what InceptionResNetV2() sets before it builds blocks
    inception_resnet_block = inception_resnet_v2.inception_resnet_block
    tfk.utils.set_random_seed(0)
    x = inp = tfk.Input((9, 9, 48), name="image")
    x = inception_resnet_block(x, scale=0.17, block_type="block35", block_idx=1)
    x = inception_resnet_block(x, scale=0.1, block_type="block17", block_idx=1)
    x = inception_resnet_block(x, scale=0.2, block_type="block8", block_idx=1, activation=None)
    model = tfk.Model(inp, x)
    assert sum(type(layer).__name__ == "CustomScaleLayer" for layer in model.layers) == 3
    perturb(model)
    model.save(tmp_path / "irv2.h5")
    mwconv.import_weights(tmp_path / "irv2.h5", output=tmp_path / "irv2.keras")
    feeds = np.random.default_rng(1).uniform(-1, 1, (2, 9, 9, 48)).astype("float32")
    got = np.asarray(mwconv.load_model(tmp_path / "irv2.keras")(feeds))
    want = model(feeds, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_every_public_tf_keras_layer_keras_3_lacks_is_translated_or_refused_with_its_reason(tmp_path):
    import keras

    from mwconv.legacy.semantics import INFERENCE_IDENTITY, REFUSED, REPLACED
    _, tfk = _tf()
    missing = {n for n in dir(tfk.layers) if isinstance(getattr(tfk.layers, n), type)
               and issubclass(getattr(tfk.layers, n), tfk.layers.Layer) and not hasattr(keras.layers, n)}
    assert missing, "tf-keras's public layers all exist in Keras 3: nothing left to check"
    assert missing <= set(REPLACED) | set(INFERENCE_IDENTITY) | set(REFUSED), sorted(missing)
    # ... and the layers defined inside tf_keras.applications
    assert {"LayerScale", "StochasticDepth", "CustomScaleLayer"} <= set(REPLACED) | set(INFERENCE_IDENTITY)
    import h5py
    i = tfk.Input((8, 2), name="x")
    tfk.Model(i, tfk.layers.Dense(3, name="features")(i)).save(tmp_path / "features.h5")
    with h5py.File(tmp_path / "features.h5", "r+") as f:      # a file naming a class no translation exists for
        f.attrs["model_config"] = f.attrs["model_config"].replace('"class_name": "Dense"',
                                                                  '"class_name": "DenseFeatures"')
    code, _, err = run_cli("import", tmp_path / "features.h5", "-o", tmp_path / "features.keras")
    assert code == 3 and not (tmp_path / "features.keras").exists()
    assert err.strip().splitlines()[-1] == (f"mwconv: error: {tmp_path / 'features.h5'}: layer 'features' is a "
                                            f"tf-keras DenseFeatures, which Keras 3 lacks: {REFUSED['DenseFeatures']}")
