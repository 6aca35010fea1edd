"""Every bad input: one-line error naming the file (and the tensor), exit 3,
nothing written, no traceback."""

import os
import pickle
import shutil

import h5py
import numpy as np
import pytest

from tests.helpers import listing, run_cli


def check_rejected(path, *needles, tensor=None):
    folder = os.path.dirname(str(path))
    before = listing(folder)
    code, out, err = run_cli("inspect", path)
    assert code == 3, (code, out, err)
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"mwconv: error: {path}")
    if tensor is not None:
        assert f"tensor '{tensor}'" in line, line
    for needle in needles:
        assert needle in line, line
    assert listing(folder) == before
    return line


def test_missing_path(tmp_path):
    check_rejected(tmp_path / "nope.h5", "no such file or directory")


def test_empty_file(tmp_path):
    (tmp_path / "empty.h5").write_bytes(b"")
    check_rejected(tmp_path / "empty.h5", "file is empty")


@pytest.mark.parametrize("name", ["tfkeras2_full.h5", "torch_state_dict.npz", "mlp_opset9.onnx", "keras3_model.keras"])
def test_truncated_files(name, samples, tmp_path):
    data = (samples / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    check_rejected(path, "truncated")


def test_truncated_npy_names_the_tensor(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((64, 64), np.float32))
    data = (tmp_path / "w.npy").read_bytes()
    (tmp_path / "w.npy").write_bytes(data[:-100])
    check_rejected(tmp_path / "w.npy", "declares 16384 bytes", "truncated", tensor="w")


def test_extension_that_lies(samples, tmp_path):
    shutil.copy(samples / "torch_state_dict.npz", tmp_path / "weights.h5")
    check_rejected(tmp_path / "weights.h5", "extension '.h5' says HDF5 but the content is NumPy .npz",
                   "magic bytes 50 4b 03 04")
    shutil.copy(samples / "tfkeras2_weights.h5", tmp_path / "model.onnx")
    check_rejected(tmp_path / "model.onnx", "says ONNX protobuf but the content is HDF5", "89 48 44 46")


def test_unknown_content(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"hello world, not weights")
    check_rejected(tmp_path / "notes.bin", "unrecognised format", "magic bytes 68 65 6c 6c")


def test_raw_pickle(tmp_path):
    (tmp_path / "state.pt").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    check_rejected(tmp_path / "state.pt", "pickle")


def test_pickled_npy(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    check_rejected(tmp_path / "obj.npy", "object dtype", tensor="obj")


def test_object_array_in_npz(tmp_path):
    np.savez(tmp_path / "mixed.npz", good=np.ones(3), bad=np.array(["x", 1], dtype=object))
    check_rejected(tmp_path / "mixed.npz", "object dtype", tensor="bad")


def test_hdf5_external_link(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["w"] = np.ones(3)
    with h5py.File(tmp_path / "main.h5", "w") as f:
        f["local"] = np.ones(2)
        f["remote"] = h5py.ExternalLink("other.h5", "/w")
    check_rejected(tmp_path / "main.h5", "external link to other.h5:/w", tensor="remote")


def test_hdf5_dangling_soft_link(tmp_path):
    with h5py.File(tmp_path / "soft.h5", "w") as f:
        f["w"] = np.ones(2)
        f["alias"] = h5py.SoftLink("/nowhere/w")
    check_rejected(tmp_path / "soft.h5", "soft link to '/nowhere/w'", tensor="alias")


def test_hdf5_soft_link_inside_file_is_fine(tmp_path):
    with h5py.File(tmp_path / "soft_ok.h5", "w") as f:
        f["w"] = np.ones(2)
        f["alias"] = h5py.SoftLink("/w")
    code, _, _ = run_cli("inspect", tmp_path / "soft_ok.h5")
    assert code == 0


def test_hdf5_external_raw_storage(tmp_path):
    (tmp_path / "raw.bin").write_bytes(np.ones(4, np.float32).tobytes())
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f.create_dataset("w", shape=(4,), dtype="f4", external=[(str(tmp_path / "raw.bin"), 0, 16)])
    check_rejected(tmp_path / "ext.h5", "external raw storage", tensor="w")


def test_hdf5_virtual_dataset(tmp_path):
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["w"] = np.ones(4)
    layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "w", shape=(4,))
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("v", layout)
    check_rejected(tmp_path / "vds.h5", "virtual dataset", tensor="v")


def test_hdf5_declared_size_bomb(tmp_path):
    with h5py.File(tmp_path / "bomb.h5", "w") as f:
        f.create_dataset("huge", shape=(1 << 16, 1 << 16), dtype="f4", chunks=(256, 256), compression="gzip")
    check_rejected(tmp_path / "bomb.h5", "declares 17179869184 bytes", "size bomb", tensor="huge")


def test_npy_declared_size_bomb(tmp_path):
    path = tmp_path / "bomb.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 12)})
        f.write(b"\0" * 64)
    check_rejected(path, "declares 17179869184 bytes", "size bomb", tensor="bomb")


def raw_tensor(name, dims, raw=None):
    """A TensorProto built field by field, as a hostile writer could (onnx.helper validates sizes)."""
    from onnx import TensorProto

    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    if raw is not None:
        t.raw_data = raw
    return t


def _onnx_with_external(tmp_path, location, make_file=True):
    import onnx
    from onnx import TensorProto, helper

    t = raw_tensor("w", [2, 2])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        entry = t.external_data.add()
        entry.key, entry.value = k, v
    node = helper.make_node("Identity", ["w"], ["y"])
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], [t])
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    path = model_dir / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


def test_onnx_external_data_absolute(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 16)
    path = _onnx_with_external(tmp_path, str(tmp_path / "w.bin"))
    check_rejected(path, "is absolute", tensor="w")


def test_onnx_external_data_dotdot(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 16)
    path = _onnx_with_external(tmp_path, "../w.bin")
    check_rejected(path, "contains '..'", tensor="w")


def test_onnx_external_data_symlink_leaving_folder(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    path = _onnx_with_external(tmp_path, "w.bin")
    os.symlink(tmp_path / "secret.bin", tmp_path / "model" / "w.bin")
    check_rejected(path, "symlink leaving the model folder", tensor="w")


def test_onnx_external_data_truncated(tmp_path):
    path = _onnx_with_external(tmp_path, "w.bin")
    (tmp_path / "model" / "w.bin").write_bytes(b"\0" * 8)
    check_rejected(path, "declares 16 bytes", "holds only 8", tensor="w")


def test_onnx_declared_size_bomb(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    t = raw_tensor("big", [1 << 16, 1 << 16], b"\0" * 16)
    graph = helper.make_graph([helper.make_node("Identity", ["big"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [t])
    onnx.save(helper.make_model(graph), tmp_path / "bomb.onnx")
    check_rejected(tmp_path / "bomb.onnx", "size bomb", tensor="big")


def test_keras_zip_bomb(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bomb.keras", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("metadata.json", "{}")
        with zf.open("model.weights.h5", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 24)
            for _ in range(80):  # 1.25 GiB of zeros, a few MiB compressed
                member.write(chunk)
    check_rejected(tmp_path / "bomb.keras", "zip bomb", tensor="model.weights.h5")


def test_keras_needing_unsafe_deserialization(tmp_path):
    import keras

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp))
    model.save(tmp_path / "lambda.keras")
    check_rejected(tmp_path / "lambda.keras", "layer 'lambda' is a Lambda layer, which holds Python code; mwconv never "
                   "runs code from a file")


def test_directory_without_saved_model(tmp_path):
    (tmp_path / "d").mkdir()
    check_rejected(tmp_path / "d", "holds neither saved_model.pb (a SavedModel) nor a keras-hub config.json")
