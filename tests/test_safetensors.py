"""safetensors as a source (one file, sharded, torch layout) and as an export format.

The sources are written by the safetensors package itself (and by torch where it is
installed); the export is read back with ``safetensors.safe_open``."""

import importlib.util
import json
import os
import shutil

import keras
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from tests.helpers import listing, run_cli, run_json
from tests.models import TORCH_RULES, numpy_torch_net

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models.py")


def _outputs(path, x_nhwc):
    import mwconv
    return keras.ops.convert_to_numpy(mwconv.load_model(path)(x_nhwc, training=False))


@pytest.mark.parametrize("name", ["torch_state_dict.safetensors", "torch_sharded.safetensors.index.json"])
def test_torch_state_dict_imports_in_torch_layout_by_default(name, samples, tmp_path):
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    code, report, err = run_json("import", samples / name, "--model", f"{MODELS}:torch_net",
                                 "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras")
    assert code == 0, err
    assert report["layout"] == "torch" and report["source_format"] == "safetensors"
    assert report["ignored"] == ["bn.num_batches_tracked"] and report["missing"] == []
    x = np.random.default_rng(5).standard_normal((3, 3, 8, 8)).astype(np.float32)
    sd = dict(np.load(samples / "torch_state_dict.npz"))
    got = _outputs(tmp_path / "m.keras", np.transpose(x, (0, 2, 3, 1)))
    np.testing.assert_allclose(got, numpy_torch_net(sd, x.astype(np.float64)), atol=1e-5)


def test_sharded_inspect_lists_every_shard_lazily(samples):
    code, doc, _ = run_json("inspect", samples / "torch_sharded.safetensors.index.json", "--hash")
    assert code == 0
    assert doc["format"] == "safetensors" and doc["metadata"]["sharded"] is True and doc["metadata"]["shards"] == 2
    sd = dict(np.load(samples / "torch_state_dict.npz"))
    assert sorted(t["name"] for t in doc["tensors"]) == sorted(sd)
    import hashlib
    for t in doc["tensors"]:
        assert t["sha256"] == hashlib.sha256(np.ascontiguousarray(sd[t["name"]]).tobytes()).hexdigest()


def test_bfloat16_and_metadata(tmp_path):
    import ml_dtypes

    value = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    save_file({"emb.weight": value}, tmp_path / "b.safetensors", metadata={"format": "pt", "note": "x"})
    code, doc, _ = run_json("inspect", tmp_path / "b.safetensors")
    assert code == 0
    assert doc["tensors"] == [{"name": "emb.weight", "shape": [2, 3], "dtype": "bfloat16", "bytes": 12}]
    assert doc["metadata"]["metadata"] == {"format": "pt", "note": "x"}
    import mwconv
    with mwconv.open_source(tmp_path / "b.safetensors") as src:
        got = src.get_tensor("emb.weight")
    assert got.dtype == value.dtype and np.array_equal(got.astype(np.float32), value.astype(np.float32))


def test_export_round_trip(samples, tmp_path):
    model = tmp_path / "m.keras"
    assert run_cli("import", samples / "tfkeras2_full.h5", "--train", "head/*", "-o", model)[0] == 0
    art = tmp_path / "m.safetensors"
    code, doc, err = run_json("export", model, "--format", "safetensors", "-o", art)
    assert code == 0, err
    assert {c["name"]: c["status"] for c in doc["verification"]["checks"]} == {"partition": "pass",
                                                                                  "outputs": "pass"}
    reference = keras.saving.load_model(model)
    with safe_open(art, framework="numpy") as f:   # the package reads what mwconv wrote
        manifest = json.loads(f.metadata()["mwconv_manifest"])
        assert f.metadata()["layout"] == "keras"
        assert sorted(f.keys()) == sorted(w.path for w in reference.weights)
        for w in reference.weights:
            np.testing.assert_array_equal(f.get_tensor(w.path), keras.ops.convert_to_numpy(w.value))
    flags = {w["path"]: w["trainable"] for w in manifest["weights"]}
    assert [p for p, t in flags.items() if t] == ["head/kernel", "head/bias"]
    # inspect shows the partition; verify passes on its own; it imports back into the architecture
    code, doc, _ = run_json("inspect", art)
    assert doc["partition"]["trainable"] == 2 and doc["manifest"]["schema_version"] == 1
    assert run_cli("verify", art, "--reference", model)[0] == 0
    code, report, _ = run_json("import", art, "--model", model, "--train", "head/*", "-o", tmp_path / "back.keras")
    assert code == 0 and report["layout"] == "keras"
    assert run_cli("verify", tmp_path / "back.keras", "--reference", model, "--checks", "partition,outputs")[0] == 0


def test_a_changed_tensor_fails_verification(samples, tmp_path):
    model = tmp_path / "m.keras"
    assert run_cli("import", samples / "tfkeras2_full.h5", "-o", model)[0] == 0
    art = tmp_path / "m.safetensors"
    assert run_cli("export", model, "--format", "safetensors", "-o", art)[0] == 0
    with safe_open(art, framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    tensors["head/bias"] = tensors["head/bias"] + np.float32(1e-3)
    save_file(tensors, tmp_path / "tampered.safetensors", metadata=metadata)
    code, doc, _ = run_json("verify", tmp_path / "tampered.safetensors", "--reference", model)
    assert code == 1
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["partition"]["problems"][0].startswith("weight 'head/bias' value differs from the reference")
    assert checks["outputs"]["status"] == "fail"


def _one_line_refusal(args, tmp_path, expected):
    if args[0] == "import":
        args = [*args, "-o", tmp_path / "out.keras"]
    code, out, err = run_cli(*args)
    assert code == 3, err
    assert err.count("\n") == 1 and expected in err, err
    assert "out.keras" not in listing(tmp_path)


def test_hostile_and_damaged_files(samples, tmp_path):
    single = (samples / "torch_state_dict.safetensors").read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(single[:-10])
    _one_line_refusal(["import", tmp_path / "trunc.safetensors", "--model", f"{MODELS}:torch_net"], tmp_path,
                      "trunc.safetensors: tensor '")
    header = bytearray(single)
    header[8:9] = b"["                                         # not a JSON object any more
    (tmp_path / "badjson.safetensors").write_bytes(bytes(header))
    _one_line_refusal(["inspect", tmp_path / "badjson.safetensors"], tmp_path, "unrecognised format")
    (tmp_path / "out.safetensors.index.json").write_text(json.dumps({"weight_map": {"fc1.weight": "../x.safetensors"}}))
    _one_line_refusal(["import", tmp_path / "out.safetensors.index.json", "--model", f"{MODELS}:torch_net"], tmp_path,
                      "tensor 'fc1.weight': shard location '../x.safetensors' contains '..': refused")
    (tmp_path / "nomap.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    _one_line_refusal(["import", tmp_path / "nomap.safetensors.index.json", "--model", f"{MODELS}:torch_net"],
                      tmp_path, "safetensors index has no 'weight_map' of tensor -> shard file")


def test_a_shard_symlinked_out_of_the_folder_is_refused(samples, tmp_path):
    inside, outside = tmp_path / "ckpt", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    shutil.copy(samples / "torch_sharded.safetensors.index.json", inside)
    for shard in ("torch_sharded-00001-of-00002.safetensors", "torch_sharded-00002-of-00002.safetensors"):
        shutil.copy(samples / shard, outside)
        os.symlink(outside / shard, inside / shard)
    code, _, err = run_cli("inspect", inside / "torch_sharded.safetensors.index.json")
    assert code == 3 and "is a symlink leaving the model folder: refused" in err


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (pip install torch to run the PyTorch-written case)")
def test_state_dict_written_by_torch(tmp_path):
    import torch
    from safetensors.torch import save_file as torch_save

    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("conv", torch.nn.Conv2d(3, 4, 3))
    net.add_module("bn", torch.nn.BatchNorm2d(4))
    net.add_module("relu", torch.nn.ReLU())
    net.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", torch.nn.Flatten())
    net.add_module("fc1", torch.nn.Linear(4, 7))
    net.add_module("act1", torch.nn.ReLU())
    net.add_module("proj", torch.nn.Linear(7, 7))
    net.add_module("act2", torch.nn.ReLU())
    net.add_module("fc2", torch.nn.Linear(7, 3))
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    net.eval()
    torch_save(net.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    code, _, err = run_cli("import", tmp_path / "model.safetensors", "--model", f"{MODELS}:torch_net",
                           "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras")
    assert code == 0, err
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_outputs(tmp_path / "m.keras", np.transpose(x, (0, 2, 3, 1))), want, atol=1e-5)
