"""Defects found in review, each with a test that failed before its fix."""

import os

import numpy as np
import pytest

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


MISSING = [
    ("inspect", "{m}.h5"), ("import", "{m}.h5", "-o", "{t}/x.keras"),
    ("import", "{m}.npz", "--model", "net.py:build", "-o", "{t}/x.keras"),
    ("import", "{src}", "--model", "{m}.keras", "-o", "{t}/x.keras"),
    ("import", "{src}", "--model", "{m}.py:build", "-o", "{t}/x.keras"),
    ("import", "{src}", "--map", "{m}.txt", "-o", "{t}/x.keras"),
    ("export", "{m}.keras", "--format", "saved_model", "-o", "{t}/sm"),
    ("export", "{m}.keras", "--format", "onnx", "-o", "{t}/x.onnx"),
    ("verify", "{m}.keras"), ("verify", "{m}.onnx"), ("verify", "{m}_saved_model"),
    ("verify", "{model}", "--reference", "{m}.keras"), ("verify", "{model}", "--baseline", "{m}.keras"),
    ("verify", "{model}", "--inputs", "{m}.npz"), ("verify", "{model}", "--source", "{m}.h5"),
    ("run", "{m}.toml"),
]


@pytest.fixture(scope="module")
def a_model(tmp_path_factory, samples):
    path = tmp_path_factory.mktemp("missing") / "m.keras"
    assert run_cli("import", samples / "tfkeras2_full.h5", "-o", path)[0] == 0
    return path


@pytest.mark.parametrize("args", MISSING, ids=[" ".join(a[:2]) + (" " + a[2] if len(a) > 2 else "") for a in MISSING])
def test_every_command_names_a_missing_input_the_same_way(args, tmp_path, samples, a_model):
    missing = tmp_path / "absent"
    argv = [a.format(m=missing, t=tmp_path, src=samples / "tfkeras2_full.h5", model=a_model) for a in args]
    code, _, err = run_cli(*argv)
    assert code in (2, 3), err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"mwconv: error: {missing}") and line.endswith(": no such file or directory"), line
    assert os.listdir(tmp_path) == []


# a folder where a file belongs: the rules and pipeline readers say so in their own words,
# since they also refuse FIFOs, devices and sockets
NOT_A_FILE = {"--map": "the rules file is not a regular file (a folder, FIFO, device or socket): refused",
              "run": "the pipeline file is not a regular file (a folder, FIFO, device or socket): refused",
              "{m}_saved_model": "is a directory but holds neither saved_model.pb (a SavedModel) nor a keras-hub "
                                 "config.json (a keras-hub preset)"}


@pytest.mark.parametrize("args", MISSING, ids=[" ".join(a[:2]) + (" " + a[2] if len(a) > 2 else "") for a in MISSING])
def test_every_command_names_a_folder_given_for_a_file(args, tmp_path, samples, a_model):
    folder = tmp_path / "absent"
    argv = [a.format(m=folder, t=tmp_path, src=samples / "tfkeras2_full.h5", model=a_model) for a in args]
    given = next(a for a in argv if a.startswith(str(folder))).removesuffix(":build")
    os.mkdir(given)
    code, _, err = run_cli(*argv)
    assert code in (2, 3), err
    line = err.strip().splitlines()[-1]
    words = next((w for key, w in NOT_A_FILE.items() if key in args), "is a folder, not a file")
    assert line == f"mwconv: error: {given}: {words}", line
    assert os.listdir(tmp_path) == [os.path.basename(given)] and os.listdir(given) == []
