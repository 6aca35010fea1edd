"""Hugging Face transformers models as PyTorch's exporter writes them (BERT, RoBERTa, ALBERT,
DistilBERT, GPT-2 at small random configs; tests/data/make_hf_onnx.py wrote
tests/data/hf_onnx/): ``mwconv import`` with no --model, the embedding block's folding and
run-time ops (RoBERTa's CumSum position ids and GatherElements token types) included, outputs
equal to onnxruntime's, every weight frozen."""

import os

import numpy as np
import pytest

from tests.helpers import run_json

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "hf_onnx")
MODELS = ["bert", "roberta", "albert", "distilbert", "gpt2"]


@pytest.mark.parametrize("name", MODELS)
def test_a_hugging_face_export_imports_with_onnxruntimes_numbers(name, tmp_path):
    import onnxruntime as ort

    import mwconv
    source = os.path.join(DATA, f"{name}.onnx")
    code, report, err = run_json("import", source, "-o", tmp_path / f"{name}.keras")
    assert code == 0, err
    assert report["weights"] and not any(w["trainable"] for w in report["weights"])
    model = mwconv.load_model(tmp_path / f"{name}.keras")
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    for seed in (0, 1):
        ids = np.random.default_rng(seed).integers(2, 100, (1, 12)).astype(np.int64)
        ids[0, -2:] = 1 if name == "roberta" else ids[0, -2:]        # RoBERTa's padding id: its position ids skip it
        want = session.run(None, {"input_ids": ids})[0]
        got = np.asarray(model(ids))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    assert any(type(layer).__name__.endswith("Embedding") for layer in model.layers)
