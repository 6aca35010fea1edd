"""`mwconv inspect` on files written by tf-keras 2.x, Keras 3, NumPy and onnx helpers."""

import hashlib

import numpy as np
import pytest

from mwconv.fixtures import builders
from tests.helpers import run_cli, run_json


def sha(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


KERAS = builders.keras_weights(0)
TORCH = builders.torch_state_dict(0)


def legacy_name(key):
    layer, weight = key.split("/")
    return f"{layer}/{layer}/{weight}:0"


def expected(name):
    """(format, architecture, {tensor name: independently known array}) for each sample file."""
    import onnx
    from onnx import numpy_helper

    if name in ("tfkeras2_full.h5", "tfkeras2_weights.h5"):
        return "hdf5", name == "tfkeras2_full.h5", {legacy_name(k): v for k, v in KERAS.items()}
    if name in ("keras3_model.keras", "keras3_saved_model"):
        return ("keras" if name.endswith(".keras") else "saved_model"), True, dict(KERAS)
    if name.endswith(".npz"):
        return "npz", False, dict(TORCH)
    if name == "fc1_weight.npy":
        return "npy", False, {"fc1_weight": TORCH["fc1.weight"]}
    model = onnx.load(f"{SAMPLES}/{name}")
    return "onnx", True, {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


SAMPLES = None
FILES = ["tfkeras2_full.h5", "tfkeras2_weights.h5", "keras3_model.keras", "keras3_saved_model",
         "torch_state_dict.npz", "torch_state_dict_compressed.npz", "fc1_weight.npy",
         "cnn_external.onnx", "mlp_opset9.onnx"]


@pytest.fixture(autouse=True)
def _samples(samples):
    global SAMPLES
    SAMPLES = samples


@pytest.mark.parametrize("name", FILES)
def test_inspect_reports_every_tensor_with_hash(name, samples):
    fmt, arch, arrays = expected(name)
    code, report, _ = run_json("inspect", "--hash", samples / name)
    assert code == 0
    assert report["format"] == fmt and report["architecture"] is arch
    assert report["totals"]["tensors"] == len(arrays)
    got = {t["name"]: t for t in report["tensors"]}
    assert sorted(got) == sorted(arrays)
    for tname, arr in arrays.items():
        row = got[tname]
        assert tuple(row["shape"]) == arr.shape, tname
        assert row["dtype"] == arr.dtype.name, tname
        assert row["bytes"] == arr.nbytes, tname
        assert row["sha256"] == sha(arr), tname
    assert report["totals"]["bytes"] == sum(a.nbytes for a in arrays.values())


@pytest.mark.parametrize("name", FILES)
def test_table_matches_json(name, samples):
    code, table, _ = run_cli("inspect", samples / name)
    assert code == 0
    _, report, _ = run_json("inspect", samples / name)
    lines = table.splitlines()
    for t in report["tensors"]:
        row = [ln.split() for ln in lines if ln.split()[:1] == [t["name"]]]
        assert row, t["name"]
        assert str(tuple(t["shape"])).replace(" ", "") in "".join(row[0]) and t["dtype"] in row[0]
    assert f"{report['totals']['tensors']} tensors" in table


def test_keras3_weights_h5_lists_keras3_layout(samples):
    code, report, _ = run_json("inspect", samples / "keras3.weights.h5")
    assert code == 0 and report["metadata"]["kind"] == "keras3-weights"
    assert report["architecture"] is False
    names = [t["name"] for t in report["tensors"]]
    assert "layers/dense/vars/0" in names and "layers/conv2d/vars/0" in names
    shapes = sorted(tuple(t["shape"]) for t in report["tensors"])
    assert shapes == sorted(a.shape for a in KERAS.values())


def test_keras_file_partition(samples):
    _, report, _ = run_json("inspect", samples / "keras3_model.keras")
    flags = {t["name"]: t["trainable"] for t in report["tensors"]}
    frozen = sorted(n for n, t in flags.items() if not t)
    assert frozen == ["bn/moving_mean", "bn/moving_variance", "conv/bias", "conv/kernel"]
    assert report["partition"] == {"trainable": 7, "frozen": 4, "trainable_bytes": 1588, "frozen_bytes": 480}


def test_saved_model_partition_is_what_tensorflow_recorded(samples):
    # model.export records the variables' own flags: a layer frozen with
    # `layer.trainable = False` still has trainable tf.Variables
    _, report, _ = run_json("inspect", samples / "keras3_saved_model")
    frozen = sorted(t["name"] for t in report["tensors"] if not t["trainable"])
    assert frozen == ["bn/moving_mean", "bn/moving_variance"]
    assert report["metadata"]["variables_stored"] == 22 and report["metadata"]["variables_unique"] == 11
    assert "serving_default" in report["metadata"]["signatures"]


def test_onnx_metadata(samples):
    _, report, _ = run_json("inspect", samples / "mlp_opset9.onnx")
    assert report["metadata"]["opset"] == {"ai.onnx": 9}
    assert report["metadata"]["initializers_listed_as_inputs"] == 4
    assert report["metadata"]["inputs"] == ["x"]
    _, report, _ = run_json("inspect", samples / "cnn_external.onnx")
    assert report["metadata"]["external_data"] is True


def test_onnx_constant_node_tensors_are_listed(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    node_c = helper.make_node("Constant", [], ["w_const"], value=numpy_helper.from_array(w, "w"))
    node_m = helper.make_node("MatMul", ["x", "w_const"], ["y"])
    graph = helper.make_graph([node_c, node_m], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), tmp_path / "c.onnx")
    code, report, _ = run_json("inspect", "--hash", tmp_path / "c.onnx")
    assert code == 0 and [t["name"] for t in report["tensors"]] == ["w_const"]
    assert report["tensors"][0]["sha256"] == sha(w)


def test_generic_hdf5_tree(tmp_path):
    import h5py

    with h5py.File(tmp_path / "tree.h5", "w") as f:
        f["encoder/w"] = np.ones((3, 2), np.float16)
        f["encoder/b"] = np.arange(2, dtype=np.int32)
        f["note"] = "text is skipped"
    code, report, _ = run_json("inspect", tmp_path / "tree.h5")
    assert code == 0 and report["metadata"]["kind"] == "generic"
    assert {t["name"]: (t["shape"], t["dtype"]) for t in report["tensors"]} == {
        "encoder/w": ([3, 2], "float16"), "encoder/b": ([2], "int32")}
    assert report["metadata"]["non_numeric_datasets_skipped"] == ["note"]


def test_fixtures_are_deterministic(tmp_path, samples):
    from mwconv.fixtures import write_fixtures

    write_fixtures(tmp_path / "again", seed=0)
    write_fixtures(tmp_path / "other", seed=1)
    for name in ("tfkeras2_full.h5", "torch_state_dict.npz", "cnn_external.onnx", "keras3_model.keras"):
        hashes = [[t["sha256"] for t in run_json("inspect", "--hash", d / name)[1]["tensors"]]
                  for d in (samples, tmp_path / "again", tmp_path / "other")]
        assert hashes[0] == hashes[1], name
        assert hashes[0] != hashes[2], name


def test_fixture_reference_outputs(samples):
    io = np.load(samples / "tfkeras2_full.io.npz")
    assert io["input:image"].shape == (4, 8, 8, 3) and io["output:head"].shape == (4, 3)
    io = np.load(samples / "cnn_external.io.npz")
    assert io["input:input"].shape == (4, 3, 8, 8) and io["output:logits"].shape == (4, 5)


def test_fixtures_refuse_to_overwrite(tmp_path, samples):
    from tests.helpers import listing

    target = tmp_path / "s"
    target.mkdir()
    (target / "fc1_weight.npy").write_bytes(b"keep me")
    code, _, err = run_cli("fixtures", target)
    assert code == 4 and "fc1_weight.npy" in err and "--force" in err
    assert (target / "fc1_weight.npy").read_bytes() == b"keep me"
    assert listing(target) == ["fc1_weight.npy"]
    assert listing(tmp_path) == ["s"]
