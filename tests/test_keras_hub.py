"""keras-hub models as import targets: every imported weight frozen at any depth, inside
keras-hub's own layers too. Its ``TransformerEncoder`` builds its sub-layers itself, so no
config holds their flags: the import says so (exit 3) unless ``--allow-whole-layer-freeze``,
which freezes each such layer whole, records it in the manifest, and mwconv's loader applies it
again. Built from a small random config, never downloaded."""

import json
import os
import zipfile

import numpy as np
import pytest

from tests.helpers import run_cli, run_json

pytest.importorskip("keras_hub", reason="keras-hub is installed with the test extras on Python 3.11 and 3.12")

FACTORY = '''
import keras
import keras_hub


def backbone():
    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, max_sequence_length=24)


def pooled():
    bb = backbone()
    return keras.Model(bb.input, bb.output["pooled_output"], name="bert_pooled")
'''


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(folder, factory spec, source .npz of the backbone's weights by path, inputs, outputs)."""
    import importlib.util
    folder = tmp_path_factory.mktemp("keras_hub")
    (folder / "bert_factory.py").write_text(FACTORY)
    spec = importlib.util.spec_from_file_location("bert_factory", folder / "bert_factory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.pooled()
    rng = np.random.default_rng(0)
    weights = {w.path: (np.asarray(w.value) + rng.normal(0, 0.05, w.shape)).astype("float32") for w in model.weights}
    np.savez(folder / "bert.npz", **weights)
    for w in model.weights:
        w.assign(weights[w.path])
    x = {"token_ids": rng.integers(0, 100, (2, 12)).astype("int32"),
         "segment_ids": np.zeros((2, 12), "int32"), "padding_mask": np.ones((2, 12), "int32")}
    return folder, f"{folder / 'bert_factory.py'}:pooled", folder / "bert.npz", x, np.asarray(model(x))


def test_a_layer_that_cannot_hold_its_sub_layers_flags_is_refused_then_frozen_whole(bert, tmp_path):
    import mwconv
    from mwconv.testing import train_step_contract
    folder, factory, source, x, expected = bert
    args = ["import", source, "--model", factory, "--layout", "keras", "-o", tmp_path / "bert.keras"]
    code, _, err = run_cli(*args)
    assert code == 3 and not (tmp_path / "bert.keras").exists()
    line = err.strip().splitlines()[-1]
    assert ("layer 'transformer_layer_0' (keras_hub TransformerEncoder) is not a built-in Keras layer and builds its "
            "own sub-layers, so no config holds a frozen flag for their 16 imported weights") in line
    assert "(2 such layers: transformer_layer_0, transformer_layer_1); pass --allow-whole-layer-freeze" in line

    code, report, err = run_json(*args, "--allow-whole-layer-freeze", "--train", "pooled_dense/*")
    assert code == 0, err
    trainable = sorted(w["target"] for w in report["weights"] if w["trainable"])
    assert trainable == ["pooled_dense/bias", "pooled_dense/kernel"] and len(report["weights"]) == 39
    with zipfile.ZipFile(tmp_path / "bert.keras") as zf:
        manifest = json.loads(zf.read("mwconv_manifest.json"))
    assert manifest["frozen_layers"] == ["transformer_layer_0", "transformer_layer_1"]
    model = mwconv.load_model(tmp_path / "bert.keras")
    assert sorted(v.path for v in model.trainable_weights) == trainable      # held again on reload
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-6)
    after = train_step_contract(model, None, x)         # fit moves the head only, bit for bit
    assert set(after) == {v.path for v in model.weights}

    exported = tmp_path / "exported.keras"
    assert run_cli("export", tmp_path / "bert.keras", "--format", "keras", "-o", exported, "--no-verify")[0] == 0
    code, doc, _ = run_json("verify", exported, "--reference", tmp_path / "bert.keras", "--checks", "partition,outputs")
    assert code == 0 and doc["ok"] is True, doc


def test_a_partial_freeze_of_a_custom_layer_is_refused_or_made_whole(bert, tmp_path):
    folder, factory, source, x, expected = bert
    args = ["import", source, "--model", factory, "--layout", "keras", "--train",
            "transformer_layer_0/feedforward_*", "-o", tmp_path / "bert.keras"]
    code, _, err = run_cli(*args)
    assert code == 3 and "freezes its weights all together or not at all" in err
    assert "--allow-whole-layer-freeze to freeze it whole" in err
    code, report, err = run_json(*args, "--allow-whole-layer-freeze")
    assert code == 0, err
    assert [w["target"] for w in report["weights"] if w["trainable"]] == []     # frozen whole, as asked
    assert os.path.isfile(tmp_path / "bert.keras")


def _as_torch(model, weights):
    """The weights as a PyTorch Linear stores them, ``(out, in)``: Dense kernels transposed,
    EinsumDense kernels flattened to (in, out) then transposed (HF BERT's q/k/v and output)."""
    from mwconv.convert.target import catalogue
    out = {}
    for t in catalogue(model):
        value = weights[t.path]
        if t.weight == "kernel" and t.layer_class == "Dense":
            value = value.T
        elif t.weight == "kernel" and t.layer_class == "EinsumDense":
            contracted = 1 if t.owner.equation.startswith("abc,") else 2        # q/k/v: (in, h, d); out: (h, d, out)
            value = value.reshape(int(np.prod(value.shape[:contracted])), -1).T
        out[t.path] = np.ascontiguousarray(value)
    return out


def test_torch_layout_transforms_reach_dense_and_einsum_kernels_at_any_depth(bert, tmp_path):
    """Inside keras-hub's TransformerEncoder, a Dense kernel is transposed like a top-level
    one, and an EinsumDense kernel (in, heads, head_dim) is the transposed Linear weight
    reshaped: decided from the layer and its equation, never from shapes."""
    import mwconv
    folder, factory, source, x, expected = bert
    import importlib.util
    spec = importlib.util.spec_from_file_location("bert_factory_t", folder / "bert_factory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = dict(np.load(source))
    np.savez(tmp_path / "torch.npz", **_as_torch(module.pooled(), weights))
    code, report, err = run_json("import", tmp_path / "torch.npz", "--model", factory, "--layout", "torch",
                                 "--allow-whole-layer-freeze", "-o", tmp_path / "bert.keras")
    assert code == 0, err
    transform = {w["target"]: w["transform"] for w in report["weights"]}
    assert transform["pooled_dense/kernel"] == "linear"
    assert transform["transformer_layer_0/feedforward_intermediate_dense/kernel"] == "linear"
    assert transform["transformer_layer_1/self_attention_layer/query/kernel"] == "linear_reshape"
    assert transform["transformer_layer_1/self_attention_layer/attention_output/kernel"] == "linear_reshape"
    assert transform["token_embedding/embeddings"] == "none"
    model = mwconv.load_model(tmp_path / "bert.keras")
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-6)


def test_a_chained_transform_in_a_rule(bert, tmp_path):
    import mwconv
    folder, factory, source, x, expected = bert
    weights = dict(np.load(source))
    key = "transformer_layer_0/self_attention_layer/value/kernel"
    hf = "encoder.layer.0.attention.self.value.weight"                           # (out, in), as torch holds it
    weights[hf] = np.ascontiguousarray(weights.pop(key).reshape(16, 16).T)
    np.savez(tmp_path / "mixed.npz", **weights)
    (tmp_path / "rules.txt").write_text(f"encoder\\.layer\\.0\\.attention\\.self\\.value\\.weight -> {key} linear,reshape\n")
    code, report, err = run_json("import", tmp_path / "mixed.npz", "--model", factory, "--layout", "keras",
                                 "--map", tmp_path / "rules.txt", "--allow-whole-layer-freeze", "-o", tmp_path / "b.keras")
    assert code == 0, err
    assert {w["target"]: w["transform"] for w in report["weights"]}[key] == "linear,reshape"
    np.testing.assert_allclose(np.asarray(mwconv.load_model(tmp_path / "b.keras")(x)), expected, rtol=1e-5, atol=1e-6)
