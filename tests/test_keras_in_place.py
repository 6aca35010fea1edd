"""``.keras`` files read in place (weights member not copied out), weights hashed
without copies, and ONNX conversion without stand-in copies of the weights: the
same values, configs and refusals as Keras's own loader."""

import hashlib
import json
import os
import zipfile

import numpy as np
import pytest

from tests.helpers import listing, run_cli


def _model():
    """Keras 3 functional model: convolution, batch norm, an LSTM over embeddings, dropout."""
    import keras

    image = keras.Input((16, 16, 3), name="image")
    ids = keras.Input((7,), dtype="int32", name="ids")
    h = keras.layers.Conv2D(8, 3, name="conv")(image)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.ReLU(name="relu")(h))
    t = keras.layers.LSTM(6, name="lstm")(keras.layers.Embedding(50, 4, name="emb")(ids))
    h = keras.layers.Dropout(0.1, name="drop")(keras.layers.Concatenate(name="cat")([h, t]))
    model = keras.Model([image, ids], keras.layers.Dense(3, name="head")(h), name="two_inputs")
    rng = np.random.default_rng(5)
    for v in model.weights:      # BatchNorm statistics and all: no weight left at its initial value
        if v.dtype.startswith("float"):
            v.assign(rng.normal(size=v.shape).astype(v.dtype) + (1.5 if "variance" in v.path else 0))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("inplace") / "model.keras"
    _model().save(path)          # written by Keras itself
    return path


def _weights(model):
    return {v.path: np.array(v.numpy()) for v in model.weights}


def test_in_place_load_matches_keras(saved):
    import keras

    from mwconv.formats.keras_file import _in_place, load_keras_model

    assert _in_place(str(saved)) is not None          # the fast path is the one under test
    ours = load_keras_model(str(saved))
    theirs = keras.saving.load_model(saved)
    mine, keras_weights = _weights(ours), _weights(theirs)
    assert sorted(mine) == sorted(keras_weights)
    for path, value in keras_weights.items():
        np.testing.assert_array_equal(mine[path], value, err_msg=path)
    # the layers keep their own initializers (the config is the user's), and variables created
    # afterwards are initialised as usual
    assert ours.get_layer("conv").get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert ours.get_layer("bn").get_config()["moving_variance_initializer"]["class_name"] == "Ones"
    fresh = keras.layers.Dense(4)
    fresh.build((3,))
    assert np.abs(fresh.kernel.numpy()).sum() > 0
    x = {"image": np.ones((2, 16, 16, 3), np.float32), "ids": np.arange(14, dtype=np.int32).reshape(2, 7)}
    np.testing.assert_array_equal(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))


def _flip_weight_byte(path):
    """Flip one byte in the middle of the largest dataset of the stored weights member."""
    from mwconv.formats.keras_zip import stored_member

    offset, info = stored_member(str(path))
    with open(path, "r+b") as f:
        f.seek(offset + info.file_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("command", [["inspect"], ["export", "--format", "saved_model", "-o", "{tmp}/sm"],
                                     ["verify", "{tmp}/other.keras", "--reference"]])
def test_flipped_byte_in_weights_is_refused(saved, tmp_path, command):
    broken = tmp_path / "model.keras"
    broken.write_bytes(saved.read_bytes())
    _flip_weight_byte(broken)
    (tmp_path / "other.keras").write_bytes(saved.read_bytes())
    before = listing(tmp_path)
    code, out, err = run_cli(*[c.format(tmp=tmp_path) for c in command], broken)
    assert code == 3, (code, out, err)
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]       # export says what it loads first
    assert line == f"mwconv: error: {broken}: tensor 'model.weights.h5': archive member fails its CRC check (corrupt)"
    assert listing(tmp_path) == before


def test_compressed_or_asset_archives_use_keras_loader(saved, tmp_path):
    """A .keras whose weights another tool recompressed is read through Keras's loader: same weights."""
    from mwconv.formats.keras_file import _in_place, load_keras_model

    packed = tmp_path / "packed.keras"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert _in_place(str(packed)) is None
    a, b = _weights(load_keras_model(str(packed))), _weights(load_keras_model(str(saved)))
    for path in a:
        np.testing.assert_array_equal(a[path], b[path])


def test_corrupt_compressed_member_is_refused_in_one_line(saved, tmp_path):
    """A recompressed archive with a byte flipped inside the weights' deflate stream: refused,
    naming the member, whether zlib or the CRC notices first."""
    packed = tmp_path / "packed.keras"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with zipfile.ZipFile(packed) as zf:
        info = zf.getinfo("model.weights.h5")
    data = bytearray(packed.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    packed.write_bytes(bytes(data))
    before = listing(tmp_path)
    code, _, err = run_cli("inspect", packed)
    assert code == 3 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and line.startswith(f"mwconv: error: {packed}: tensor 'model.weights.h5': archive member ")
    assert "corrupt" in line
    assert listing(tmp_path) == before


def test_export_manifest_hashes_match_the_bytes(saved, tmp_path):
    """The manifest's sha256 (computed once, shared with verify) is the sha256 of each weight's bytes."""
    import keras

    out = tmp_path / "sm"
    code, _, err = run_cli("export", saved, "--format", "saved_model", "-o", out)
    assert code == 0, err
    manifest = json.loads((out / "assets.extra" / "mwconv_manifest.json").read_text())
    model = keras.saving.load_model(saved)
    expected = {v.path: hashlib.sha256(np.ascontiguousarray(v.numpy()).tobytes()).hexdigest() for v in model.weights}
    got = {w["path"]: w["sha256"] for w in manifest["weights"]}
    assert len(got) == len(expected) == len(model.weights)
    assert sorted(got.values()) == sorted(expected.values())


def test_onnx_export_keeps_weight_shapes(saved, tmp_path):
    """Weights enter the converted graph with unknown dimensions (no stand-in copies in
    TensorFlow's optimizer) and leave it as initializers of their full shape, with no
    leftover Identity in front of them; onnxruntime's outputs match Keras's."""
    import keras
    import onnx
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    code, _, err = run_cli("export", saved, "--format", "onnx", "-o", out)
    assert code == 0, err
    proto = onnx.load(str(out))
    model = keras.saving.load_model(saved)
    shapes = {t.name: list(t.dims) for t in proto.graph.initializer}
    for v in model.weights:
        if "seed_generator" not in v.path:
            assert shapes[v.path] == list(v.shape), v.path
    weights = {v.path for v in model.weights}
    assert not [n.name for n in proto.graph.node if n.op_type == "Identity" and set(n.input) & weights]
    assert sorted(i.name for i in proto.graph.input) == ["ids", "image"]
    x = {"image": np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32),
         "ids": np.arange(14, dtype=np.int32).reshape(2, 7)}
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, x)[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loader", ["in place", "keras"])
def test_frozen_adapted_normalization_computes_with_its_loaded_statistics(tmp_path, loader):
    """Keras's Normalization derives the mean and variance it computes with from its variables;
    frozen (mwconv's mixed counterpart) and reloaded, it derives them from the loaded values,
    not from the zeros or initial values the variables were created with."""
    import keras

    import mwconv
    from mwconv.formats.keras_file import _in_place
    from mwconv.layers.conversion import convert_to_mixed

    inp = keras.Input((4,), name="x")
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(64, 4)).astype("float32"))
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(norm(inp)))
    x = np.linspace(-1, 5, 8, dtype=np.float32).reshape(2, 4)
    want = model.predict(x, verbose=0)
    mixed = convert_to_mixed(model, {v.path for v in model.weights})
    assert type(mixed.get_layer("norm")).__module__ == "mwconv.layers.mixed"
    path = tmp_path / "norm.keras"
    mixed.save(path)
    if loader == "keras":     # recompressed: read through Keras's own loader
        packed = tmp_path / "packed.keras"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info.filename))
        path = packed
    assert (_in_place(str(path)) is not None) == (loader == "in place")
    np.testing.assert_allclose(mwconv.load_model(path).predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
