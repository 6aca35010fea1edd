"""Defects found in review, each with a test that failed before its fix."""

import numpy as np

import mwconv
from tests import tfkeras_zoo
from tests.helpers import run_cli


def test_tf_matrix_transpose_swaps_only_the_last_two_axes(tmp_path):
    tfk = tfkeras_zoo._tfk()
    import tensorflow as tf

    inp = tfk.Input((3, 4), name="x")
    h = tf.linalg.matrix_transpose(inp)                     # (B, 4, 3), a TFOpLambda in the file
    out = tfk.layers.Dense(2, name="head")(h)
    model = tfk.Model(inp, out)
    model.save(tmp_path / "mt.h5")
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    code, _, err = run_cli("import", tmp_path / "mt.h5", "-o", tmp_path / "mt.keras")
    assert code == 0, err
    got = np.asarray(mwconv.load_model(tmp_path / "mt.keras")(x))
    np.testing.assert_allclose(got, np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    assert got.shape == (2, 4, 2)


def test_an_error_hashing_the_source_stops_the_import_in_one_line(tmp_path, samples, monkeypatch):
    from mwconv import manifest

    def fails(path, block=1 << 24):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(manifest, "sha256_file", fails)
    code, out, err = run_cli("import", samples / "tfkeras2_full.h5", "-o", tmp_path / "m.keras")
    assert code == 3
    assert err.strip().endswith("tfkeras2_full.h5: cannot read the source to record its sha256 ([Errno 5] "
                                "Input/output error)")
    assert not (tmp_path / "m.keras").exists()


def test_in_place_keras_load_keeps_dropout_seed_state(tmp_path):
    import keras

    inp = keras.Input((4,), name="x")
    out = keras.layers.Dense(2, name="head")(keras.layers.Dropout(0.5, seed=42, name="drop")(inp))
    keras.Model(inp, out).save(tmp_path / "m.keras")

    def seeds(model):
        return [np.asarray(keras.ops.convert_to_numpy(sg.state.value)).tolist()
                for sg in model.get_layer("drop")._seed_generators]

    want = seeds(keras.saving.load_model(tmp_path / "m.keras"))
    assert want and want != [[0, 0]]
    assert seeds(mwconv.load_model(tmp_path / "m.keras")) == want
