"""`mwconv import` against files written by tf-keras 2.x, Keras 3, NumPy and onnx helpers."""

import json
import os

import keras
import numpy as np
import pytest

from mwconv.convert.importer import import_weights
from mwconv.fixtures import builders
from mwconv.testing import train_step_contract, weights_by_path
from tests.helpers import listing, run_cli, run_json
from tests.models import TORCH_RULES, numpy_torch_net

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models.py")


def load(path):
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def out(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))


# -- 1. tf.keras 2.x full model, no --model ----------------------------------
def test_tf_keras_full_model_imports_without_model(samples, tmp_path):
    target = tmp_path / "m.keras"
    code, report, _ = run_json("import", samples / "tfkeras2_full.h5", "-o", target)
    assert code == 0 and report["ok"] is True
    assert len(report["weights"]) == 11 and report["missing"] == [] and report["unused"] == []
    assert {w["target"]: w["source"] for w in report["weights"]}["fc1/kernel"] == "fc1/fc1/kernel:0"
    assert all(not w["trainable"] for w in report["weights"])
    model = load(target)
    io = np.load(samples / "tfkeras2_full.io.npz")
    got = out(model, {"image": io["input:image"], "ids": io["input:ids"]})
    assert np.abs(got - io["output:head"]).max() <= 1e-6
    assert model.trainable_weights == []
    assert type(model.get_layer("fc1")).__module__ == "mwconv.layers.mixed"
    # the rebuild runs zeros initializers for imported weights, then puts the user's back
    assert model.get_layer("fc1").get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"


def test_train_glob_keeps_imported_weights_trainable(samples, tmp_path):
    code, report, _ = run_json("import", samples / "tfkeras2_full.h5", "-o", tmp_path / "m.keras", "--train", "head/*")
    assert code == 0
    trainable = sorted(w["target"] for w in report["weights"] if w["trainable"])
    assert trainable == ["head/bias", "head/kernel"]
    model = load(tmp_path / "m.keras")
    assert sorted(v.path for v in model.trainable_weights) == ["head/bias", "head/kernel"]
    # a training step moves the head only
    io = np.load(samples / "tfkeras2_full.io.npz")
    train_step_contract(model, None, {"image": io["input:image"], "ids": io["input:ids"]})


# -- 2. weights-only files into a --model factory ------------------------------
@pytest.mark.parametrize("name", ["tfkeras2_weights.h5", "keras3.weights.h5"])
def test_weights_only_files_into_factory(name, samples, tmp_path):
    code, report, _ = run_json("import", samples / name, "--model", f"{MODELS}:reference_net", "-o", tmp_path / "m.keras")
    assert code == 0, report
    assert len(report["provenance"]) == 11
    model = load(tmp_path / "m.keras")
    io = np.load(samples / "tfkeras2_full.io.npz")
    got = out(model, {"image": io["input:image"], "ids": io["input:ids"]})
    assert np.abs(got - io["output:head"]).max() <= 1e-5
    expected = builders.keras_weights(0)
    for path, (value, trainable) in weights_by_path(model).items():
        np.testing.assert_array_equal(value, expected[path])
        assert trainable is False


# -- 3. a PyTorch-style state dict, --layout torch and a rules file -------------
@pytest.mark.parametrize("name", ["torch_state_dict.npz", "torch_state_dict_compressed.npz"])
def test_torch_state_dict_with_rules(name, samples, tmp_path):
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    code, report, err = run_json("import", samples / name, "--model", f"{MODELS}:torch_net", "--layout", "torch",
                                 "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras")
    assert code == 0, err
    by_target = {w["target"]: w for w in report["weights"]}
    assert by_target["proj/kernel"]["transform"] == "linear" and by_target["proj/kernel"]["match"] == "normalised"
    assert by_target["stem_conv/kernel"]["transform"] == "conv" and by_target["stem_conv/kernel"]["match"] == "rule:3"
    assert by_target["stem_bn/moving_variance"]["source"] == "bn.running_var"
    assert report["ignored"] == ["bn.num_batches_tracked"]
    model = load(tmp_path / "m.keras")
    x = np.random.default_rng(5).standard_normal((3, 3, 8, 8)).astype(np.float32)
    got = out(model, np.transpose(x, (0, 2, 3, 1)))
    sd = dict(np.load(samples / name))
    np.testing.assert_allclose(got, numpy_torch_net(sd, x.astype(np.float64)), atol=1e-5)
    # the square proj (7, 7) was transposed: loading it untransposed gives other numbers
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("proj").kernel), sd["proj.weight"].T)
    assert not np.array_equal(sd["proj.weight"], sd["proj.weight"].T)


def test_rule_targets_are_read_like_source_names_and_a_rule_in_the_wrong_order_says_so(samples, tmp_path):
    """PyTorch's names, one catch-all rule: its targets (``stem_bn/bias``, ``stem_conv/weight``)
    are normalised like source names; a catch-all placed before the ``!ignore`` that it
    captures names the line to move; a misspelt target names the nearest weights."""
    args = ["import", samples / "torch_state_dict.npz", "--model", f"{MODELS}:torch_net", "--layout", "torch",
            "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras"]
    (tmp_path / "rules.txt").write_text("(conv|bn)\\.(.*) -> stem_\\1/\\2\nbn\\.num_batches_tracked -> !ignore\n")
    code, _, err = run_cli(*args)
    assert code == 3 and not (tmp_path / "m.keras").exists()
    assert err.strip().splitlines()[-1] == (
        f"mwconv: error: {samples / 'torch_state_dict.npz'}: tensor 'bn.num_batches_tracked': rule on line 1 "
        "((conv|bn)\\.(.*) -> stem_\\1/\\2) maps it to 'stem_bn/num_batches_tracked', which is not a weight of the "
        "target model; line 2 ignores it, but rules are tried in file order and the first match wins: move line 2 "
        "above line 1")
    (tmp_path / "rules.txt").write_text("bn\\.num_batches_tracked -> !ignore\n(conv|bn)\\.(.*) -> stem_\\1/\\2\n"
                                        "fc2\\.(.*) -> out/\\1\n")
    code, report, err = run_json(*args)
    assert code == 0, err
    by_target = {w["target"]: w for w in report["weights"]}
    assert by_target["stem_bn/beta"]["source"] == "bn.bias" and by_target["stem_bn/beta"]["match"] == "rule:2"
    assert by_target["stem_bn/gamma"]["source"] == "bn.weight"
    assert by_target["stem_bn/moving_variance"]["source"] == "bn.running_var"
    assert by_target["stem_conv/kernel"]["source"] == "conv.weight" and by_target["stem_conv/kernel"]["transform"] == "conv"
    assert by_target["out/kernel"]["source"] == "fc2.weight" and by_target["out/kernel"]["transform"] == "linear"
    assert by_target["fc1/kernel"]["match"] == "normalised" and report["ignored"] == ["bn.num_batches_tracked"]
    (tmp_path / "m.keras").unlink()
    (tmp_path / "rules.txt").write_text("conv\\.weight -> stem_cnv/kernel\n")
    code, _, err = run_cli(*args)
    assert code == 3
    assert ("rule on line 1 (conv\\.weight -> stem_cnv/kernel) maps it to 'stem_cnv/kernel', which is not a weight of "
            "the target model; nearest target weights: stem_conv/kernel") in err


def test_a_pytorch_resnet18_state_dict_matches_its_keras_twin_with_one_rule(tmp_path):
    """safetensors.torch wrote it (tests/data/make_torch_onnx.py): torchvision's resnet18
    module names, 122 tensors; the twin is examples/resnet18_keras.py."""
    data = os.path.join(os.path.dirname(__file__), "data", "torch_resnet18.safetensors")
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    code, report, err = run_json("import", data, "--model", os.path.join(examples, "resnet18_keras.py:narrow"),
                                 "--layout", "torch", "--map", os.path.join(examples, "resnet18.rules"),
                                 "-o", tmp_path / "r18.keras")
    assert code == 0, err
    assert len(report["weights"]) == 102 and len(report["ignored"]) == 20
    assert {w["match"] for w in report["weights"]} == {"normalised"}
    by_target = {w["target"]: w for w in report["weights"]}
    assert by_target["layer2_0_downsample_1/moving_variance"]["source"] == "layer2.0.downsample.1.running_var"
    assert by_target["layer3_1_conv2/kernel"]["transform"] == "conv" and by_target["fc/kernel"]["transform"] == "linear"
    io = np.load(data + ".io.npz")
    got = out(load(tmp_path / "r18.keras"), np.transpose(io["input"], (0, 2, 3, 1)))
    np.testing.assert_allclose(got, io["output"], rtol=1e-5, atol=1e-5 * float(np.abs(io["output"]).max()))


def test_missing_new_head_is_refused_then_allowed(samples, tmp_path):
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    args = ["import", samples / "torch_state_dict.npz", "--model", f"{MODELS}:torch_net_with_head",
            "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras"]
    code, doc, err = run_json(*args)
    assert code == 3 and "new_head/kernel" in err and "--allow-missing" in err
    assert doc["details"]["missing"] == ["new_head/kernel", "new_head/bias"]
    assert listing(tmp_path) == ["rules.txt"]
    code, report, _ = run_json(*args, "--allow-missing")
    assert code == 0
    model = load(tmp_path / "m.keras")
    assert sorted(v.path for v in model.trainable_weights) == ["new_head/bias", "new_head/kernel"]
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
    after = train_step_contract(model, None, x)
    assert set(after) == {v.path for v in model.weights}


def test_unused_source_tensors_are_refused(samples, tmp_path):
    code, doc, err = run_json("import", samples / "torch_state_dict.npz", "--model", f"{MODELS}:torch_net",
                              "-o", tmp_path / "m.keras")
    assert code == 3
    assert "bn.num_batches_tracked" in doc["details"]["unused"]
    assert "source tensors are unused" in err
    assert not (tmp_path / "m.keras").exists()


# -- 4. ONNX initializers, --layout onnx, rules file ------------------------------
def write_onnx_net(path, seed=0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = {
        "onnx::Conv_11": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "onnx::Conv_12": rng.standard_normal(4).astype(np.float32),
        "bn.scale": rng.standard_normal(4).astype(np.float32),
        "bn.bias": rng.standard_normal(4).astype(np.float32),
        "bn.mean": rng.standard_normal(4).astype(np.float32),
        "bn.var": (np.abs(rng.standard_normal(4)) + 0.5).astype(np.float32),
        "embed.table": rng.standard_normal((10, 4)).astype(np.float32),
        "onnx::Gemm_20": rng.standard_normal((4, 4)).astype(np.float32),  # square, (out, in)
        "onnx::Gemm_21": rng.standard_normal(4).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "onnx::Conv_11", "onnx::Conv_12"], ["c"]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b"], epsilon=1e-5),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gather", ["embed.table", "ids"], ["g"]),
        helper.make_node("ReduceMean", ["g"], ["e"], axes=[1], keepdims=0),
        helper.make_node("Add", ["f", "e"], ["h"]),
        helper.make_node("Gemm", ["h", "onnx::Gemm_20", "onnx::Gemm_21"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 6, 6]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


ONNX_RULES = """
onnx::Conv_11  -> conv/kernel
onnx::Conv_12  -> conv/bias
embed\\.table  -> emb/embeddings
onnx::Gemm_20  -> fc/kernel
onnx::Gemm_21  -> fc/bias
"""


def test_onnx_initializers_into_factory(tmp_path):
    import onnxruntime as ort

    write_onnx_net(tmp_path / "net.onnx")
    (tmp_path / "rules.txt").write_text(ONNX_RULES)
    code, report, err = run_json("import", tmp_path / "net.onnx", "--model", f"{MODELS}:onnx_net", "--layout", "onnx",
                                 "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras")
    assert code == 0, err
    transforms = {w["target"]: w["transform"] for w in report["weights"]}
    assert transforms["fc/kernel"] == "linear" and transforms["conv/kernel"] == "conv"
    assert transforms["bn/gamma"] == "none"
    rng = np.random.default_rng(1)
    image = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    ids = rng.integers(0, 10, (5, 4))
    sess = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {"image": image, "ids": ids})[0]
    model = load(tmp_path / "m.keras")
    got = out(model, {"image": np.transpose(image, (0, 2, 3, 1)), "ids": ids.astype("int32")})
    np.testing.assert_allclose(got, expected, atol=1e-5)


# -- 6. reload keeps weights, flags, outputs ----------------------------------------
def test_python_api_and_reload(samples, tmp_path):
    from mwconv.formats.keras_file import save_keras
    from mwconv.manifest import build_manifest

    model, report = import_weights(samples / "tfkeras2_full.h5", train=["fc1/*"])
    assert report.ok and len(report.provenance) == 11
    save_keras(model, tmp_path / "m.keras", build_manifest(model, report.provenance))
    reloaded = load(tmp_path / "m.keras")
    a, b = weights_by_path(model), weights_by_path(reloaded)
    assert a.keys() == b.keys()
    for p in a:
        assert a[p][1] == b[p][1] and a[p][0].tobytes() == b[p][0].tobytes()
    io = np.load(samples / "tfkeras2_full.io.npz")
    inputs = {"image": io["input:image"], "ids": io["input:ids"]}
    np.testing.assert_array_equal(out(model, inputs), out(reloaded, inputs))
    train_step_contract(reloaded, None, inputs)
    manifest = json.loads(__import__("zipfile").ZipFile(tmp_path / "m.keras").read("mwconv_manifest.json"))
    entry = {w["path"]: w for w in manifest["weights"]}["fc1/kernel"]
    assert entry["trainable"] is True and entry["provenance"]["tensor"] == "fc1/fc1/kernel:0"
    assert entry["provenance"]["source_sha256"] == __import__("mwconv.manifest", fromlist=["x"]).sha256_file(
        samples / "tfkeras2_full.h5")


# -- 7. bad inputs -----------------------------------------------------------------------
def rejected(tmp_path, *args, needles=()):
    before = listing(tmp_path)
    code, _, err = run_cli("import", *args, "-o", tmp_path / "out.keras")
    assert code == 3, err
    line = err.strip()
    assert line.startswith("mwconv: error:") and "\n" not in line and "Traceback" not in line
    for needle in needles:
        assert needle in line, line
    assert listing(tmp_path) == before
    return line


def test_shape_mismatch_names_both_shapes_and_transform(samples, tmp_path):
    sd = dict(np.load(samples / "torch_state_dict.npz"))
    sd["proj.weight"] = np.ones((7, 6), np.float32)
    np.savez(tmp_path / "sd.npz", **sd)
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    rejected(tmp_path, tmp_path / "sd.npz", "--model", f"{MODELS}:torch_net", "--map", tmp_path / "rules.txt",
             needles=["proj.weight (7, 6) -> proj/kernel (7, 7)", "transform 'linear' gives (6, 7)"])


def test_two_sources_for_one_target(samples, tmp_path):
    sd = dict(np.load(samples / "torch_state_dict.npz"))
    sd["proj/weight"] = sd["proj.weight"]
    np.savez(tmp_path / "sd.npz", **sd)
    rejected(tmp_path, tmp_path / "sd.npz", "--model", f"{MODELS}:torch_net",
             needles=["two source tensors match target 'proj/kernel'", "proj.weight", "proj/weight"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_values_refused_unless_allowed(bad, samples, tmp_path):
    sd = dict(np.load(samples / "torch_state_dict.npz"))
    sd["fc1.weight"][2, 3] = bad
    np.savez(tmp_path / "sd.npz", **sd)
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    args = [tmp_path / "sd.npz", "--model", f"{MODELS}:torch_net", "--map", tmp_path / "rules.txt"]
    rejected(tmp_path, *args, needles=["tensor 'fc1.weight'", "NaN/Inf", "(2, 3)", "--allow-nonfinite"])
    code, _, _ = run_cli("import", *args, "--allow-nonfinite", "-o", tmp_path / "ok.keras")
    assert code == 0


def test_float64_overflow(samples, tmp_path):
    sd = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in np.load(samples / "torch_state_dict.npz").items()}
    sd["fc1.bias"][0] = 1e300
    np.savez(tmp_path / "sd.npz", **sd)
    (tmp_path / "rules.txt").write_text(TORCH_RULES)
    rejected(tmp_path, tmp_path / "sd.npz", "--model", f"{MODELS}:torch_net", "--map", tmp_path / "rules.txt",
             needles=["tensor 'fc1.bias'", "float64 values up to 1e+300 overflow float32"])


@pytest.mark.parametrize("spec,needle", [
    ("no_such_module_xyz:build", "cannot be imported (ModuleNotFoundError"),
    (f"{MODELS}:not_a_model", "did not return a Keras model (got dict)"),
    (f"{MODELS}:broken", "raised RuntimeError: factory failed on purpose"),
    (f"{MODELS}:nothing_here", "'nothing_here' is not a function"),
    ("missing_file.py:build", "missing_file.py: no such file"),
])
def test_bad_model_spec(spec, needle, samples, tmp_path):
    rejected(tmp_path, samples / "torch_state_dict.npz", "--model", spec, needles=[needle])


def test_architecture_less_source_says_pass_model(samples, tmp_path):
    rejected(tmp_path, samples / "tfkeras2_weights.h5", needles=["carries no architecture", "pass --model"])


def test_existing_output_needs_force(samples, tmp_path):
    import shutil

    shutil.copy(samples / "keras3_model.keras", tmp_path / "out.keras")     # a previous .keras
    before = (tmp_path / "out.keras").read_bytes()
    code, _, err = run_cli("import", samples / "tfkeras2_full.h5", "-o", tmp_path / "out.keras")
    assert code == 4 and "--force" in err and (tmp_path / "out.keras").read_bytes() == before
    code, _, _ = run_cli("import", samples / "tfkeras2_full.h5", "-o", tmp_path / "out.keras", "--force")
    assert code == 0 and load(tmp_path / "out.keras").count_params() > 0
    # --force replaces a previous .keras only, never another file under that name
    (tmp_path / "notes.keras").write_bytes(b"my notes")
    code, _, err = run_cli("import", samples / "tfkeras2_full.h5", "-o", tmp_path / "notes.keras", "--force")
    assert code == 4 and "exists and is not a keras file" in err
    assert (tmp_path / "notes.keras").read_bytes() == b"my notes"


def test_bad_rules_file_is_a_usage_error(samples, tmp_path):
    (tmp_path / "rules.txt").write_text("conv.weight => conv/kernel\n")
    code, _, err = run_cli("import", samples / "torch_state_dict.npz", "--model", f"{MODELS}:torch_net",
                           "--map", tmp_path / "rules.txt", "-o", tmp_path / "m.keras")
    assert code == 2 and "line 1" in err and "SOURCE_REGEX -> TARGET" in err
