"""ONNX graphs as PyTorch's exporter writes them (torch.onnx.export, opset 17,
eval mode): torchvision-class CNN blocks and transformer encoders defined in
tests/torch_blocks.py. With torch installed the blocks are exported live; without
it the tests read the same exports committed under tests/data/torch_onnx/
(written by tests/data/make_torch_onnx.py). Each: ``mwconv import`` with no
--model, outputs equal onnxruntime's (<= 1e-5 relative), SavedModel and .keras
exports, ``mwconv verify`` passing with the source check run."""

import importlib.util
import os
import shutil
import warnings

import numpy as np
import pytest

from tests.helpers import run_cli, run_json

HERE = os.path.dirname(os.path.abspath(__file__))
COMMITTED = os.path.join(HERE, "data", "torch_onnx")
TORCH = importlib.util.find_spec("torch") is not None
CASES = ["mobilenet_v2", "mobilenet_v3", "shufflenet_v2", "squeezenet", "convnext", "vit", "transformer_encoder",
         "fpn", "crnn", "shufflenet_v2_dynamic", "vit_dynamic", "transformer_encoder_dynamic"]
# the Keras model keeps a free batch axis unless the graph moves or reshapes it
FREE_BATCH = {"mobilenet_v2", "mobilenet_v3", "shufflenet_v2", "squeezenet", "convnext", "crnn", "shufflenet_v2_dynamic",
              "vit_dynamic", "transformer_encoder_dynamic"}


@pytest.fixture(scope="session")
def torch_exports(tmp_path_factory):
    """{case: path}: live exports where torch is installed, else the committed ones."""
    folder = tmp_path_factory.mktemp("torch_onnx")
    out = {}
    for case in CASES:
        path = folder / f"{case}.onnx"
        if TORCH:
            from tests.torch_blocks import export
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export(case.replace("_dynamic", ""), path, dynamic_batch=case.endswith("_dynamic"))
        else:
            shutil.copy(os.path.join(COMMITTED, f"{case}.onnx"), path)
        out[case] = path
    return out


def _probe(path, batch):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else batch for d in spec.shape]
    rng = np.random.default_rng(7)
    x = rng.integers(0, 50, shape).astype(np.int64) if "int64" in spec.type else \
        rng.standard_normal(shape).astype(np.float32)
    return x, sess.run(None, {spec.name: x})[0]


@pytest.mark.parametrize("case", CASES)
def test_pytorch_export_imports_exports_and_verifies(case, torch_exports, tmp_path):
    import mwconv
    source = torch_exports[case]
    code, _, err = run_cli("import", source, "-o", tmp_path / "m.keras")
    assert code == 0, err
    model = mwconv.load_model(tmp_path / "m.keras")
    batch = None if case in FREE_BATCH else 1
    assert model.inputs[0].shape[0] == batch
    x, want = _probe(source, 3 if case.endswith("_dynamic") else 1)
    got = np.asarray(model(x))                                 # one input: called with one array
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
    assert model.trainable_weights == [] and len(model.weights) > 0
    assert all(type(layer).__module__.startswith("mwconv") or not layer.weights for layer in model.layers)
    for fmt, out in (("saved_model", tmp_path / "sm"), ("keras", tmp_path / "copy.keras")):
        code, _, err = run_cli("export", tmp_path / "m.keras", "--format", fmt, "-o", out)
        assert code == 0, err
        code, doc, err = run_json("verify", out, "--reference", tmp_path / "m.keras", "--source", source)
        assert code == 0, err
        checks = {c["name"]: c for c in doc["checks"]}
        assert checks["source"]["status"] == "pass", checks["source"]
        assert checks["partition"]["status"] == "pass" and checks["outputs"]["status"] == "pass"


@pytest.mark.parametrize("case", ["vit", "transformer_encoder_dynamic"])
def test_attention_blocks_export_to_onnx(case, torch_exports, tmp_path):
    source = torch_exports[case]
    assert run_cli("import", source, "-o", tmp_path / "m.keras")[0] == 0
    code, _, err = run_cli("export", tmp_path / "m.keras", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert code == 0, err
    import onnxruntime as ort
    x, want = _probe(source, 2 if case.endswith("_dynamic") else 1)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(out - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))


def test_train_selects_weights_of_an_onnx_import(torch_exports, tmp_path):
    code, doc, err = run_json("import", torch_exports["convnext"], "-o", tmp_path / "m.keras",
                              "--train", "*layernormalization*", "--train", "*norm*")
    assert code == 0, err
    trainable = sorted(w["target"] for w in doc["weights"] if w["trainable"])
    assert trainable and all("norm" in t.lower() for t in trainable)
    import mwconv
    model = mwconv.load_model(tmp_path / "m.keras")
    assert sorted(v.path for v in model.trainable_weights) == trainable


def test_committed_exports_match_the_blocks():
    """The committed files are what tests/data/make_torch_onnx.py writes (same graphs)."""
    if not TORCH:
        pytest.skip("torch is not installed: the committed exports are used as they are")
    import onnx

    from tests.torch_blocks import export
    for case in ("mobilenet_v2", "vit"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            live = os.path.join(COMMITTED, "..", f"_{case}.onnx")
            try:
                export(case, live)
                a, b = onnx.load(live).graph, onnx.load(os.path.join(COMMITTED, f"{case}.onnx")).graph
            finally:
                if os.path.exists(live):
                    os.remove(live)
        assert sorted(n.op_type for n in a.node) == sorted(n.op_type for n in b.node)   # the exporter's order varies
        assert sorted(t.name for t in a.initializer) == sorted(t.name for t in b.initializer)


@pytest.mark.parametrize("case", CASES)
def test_embedded_weights_stay_in_the_file(case, torch_exports, monkeypatch, tmp_path):
    """With every embedded initializer left in the file (the threshold forced to 0), the source
    holds the graph without the weights, reads each tensor equal to onnx's own parse, and the
    import matches onnxruntime as before."""
    import onnx
    from onnx import numpy_helper

    import mwconv
    from mwconv.formats import onnx_file

    monkeypatch.setattr(onnx_file, "LEAN_MIN_BYTES", 0)
    source = torch_exports[case]
    full = onnx.load(str(source))
    src = onnx_file.OnnxSource(str(source))
    assert src._raw and src.model.ByteSize() <= full.ByteSize() - sum(n for _, n in src._raw.values())
    for t in full.graph.initializer:
        np.testing.assert_array_equal(np.asarray(src.get_tensor(t.name)), numpy_helper.to_array(t), err_msg=t.name)
    code, _, err = run_cli("import", source, "-o", tmp_path / "m.keras")
    assert code == 0, err
    x, want = _probe(source, 3 if case.endswith("_dynamic") else 1)
    got = np.asarray(mwconv.load_model(tmp_path / "m.keras")(x))
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
