"""keras-hub backbones and tasks themselves as targets and sources: a ``BertBackbone`` or
``BertTextClassifier`` (a factory, a preset folder or its ``config.json``) imports into what
it was, frozen at any depth on the built model, the partition recorded in the manifest and
applied again by mwconv's loader; preset folders written by keras-hub's ``save_to_preset``
import as sources; Hugging Face checkpoints (``save_pretrained``) import into the keras-hub
backbone of the same configuration with the rules mwconv ships (``--map hf-bert``).
Small random configs, nothing downloaded."""

import json
import os
import zipfile

import numpy as np
import pytest

from tests.helpers import run_cli, run_json

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is installed with the test extras on Python 3.11 "
                                                    "and 3.12")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF = os.path.join(ROOT, "tests", "data", "hf_state_dicts")
EXAMPLE = os.path.join(ROOT, "examples", "hf_keras_hub.py")

FACTORY = '''
import keras
import keras_hub


def backbone():
    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, max_sequence_length=24)


def task():
    return keras_hub.models.BertTextClassifier(backbone=backbone(), num_classes=3, preprocessor=None)


def resnet():
    keras.utils.set_random_seed(0)
    bb = keras_hub.models.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                         stackwise_num_filters=[64], stackwise_num_blocks=[1],
                                         stackwise_num_strides=[1], block_type="basic_block",
                                         image_shape=(16, 16, 3))
    return keras_hub.models.ImageClassifier(backbone=bb, num_classes=3, preprocessor=None)
'''


def _load(path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("hub_factory_" + str(abs(hash(str(path)))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _moved(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.trainable or "moving" in w.path:
            w.assign((np.asarray(w.value) + rng.normal(0, 0.05, w.shape)).astype(w.dtype))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(folder, factory file, module, inputs, backbone preset, task preset, task's outputs)."""
    folder = tmp_path_factory.mktemp("hub")
    (folder / "hub.py").write_text(FACTORY)
    module = _load(folder / "hub.py")
    task = module.task()
    _moved(task, 1)
    task.save_to_preset(str(folder / "task_preset"))
    task.backbone.save_to_preset(str(folder / "bert_preset"))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, 100, (2, 12)).astype("int32"),
         "segment_ids": np.zeros((2, 12), "int32"), "padding_mask": np.ones((2, 12), "int32")}
    return folder, folder / "hub.py", module, x, folder / "bert_preset", folder / "task_preset", np.asarray(task(x))


def _manifest(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("mwconv_manifest.json"))


def test_a_task_preset_imports_as_what_it_was_frozen_in_place(hub, tmp_path):
    import keras

    import mwconv
    from mwconv.testing import train_step_contract
    folder, _, _, x, _, task_preset, expected = hub
    out = tmp_path / "task.keras"
    code, report, err = run_json("import", task_preset, "--train", "logits/*",
                                 "--train", "bert_backbone/transformer_layer_1/feedforward_*", "-o", out)
    assert code == 0, err
    assert report["source_format"] == "keras_hub_preset" if "source_format" in report else True
    trainable = sorted(w["target"] for w in report["weights"] if w["trainable"])
    assert trainable == ["bert_backbone/transformer_layer_1/feedforward_intermediate_dense/bias",
                         "bert_backbone/transformer_layer_1/feedforward_intermediate_dense/kernel",
                         "bert_backbone/transformer_layer_1/feedforward_layer_norm/beta",
                         "bert_backbone/transformer_layer_1/feedforward_layer_norm/gamma",
                         "bert_backbone/transformer_layer_1/feedforward_output_dense/bias",
                         "bert_backbone/transformer_layer_1/feedforward_output_dense/kernel",
                         "logits/bias", "logits/kernel"]
    assert {w["source"] for w in report["weights"]} >= {"layers/dense/vars/0",
                                                        "layers/bert_backbone/layers/dense/vars/0"}

    model = mwconv.load_model(out)
    assert type(model).__name__ == "BertTextClassifier"          # reloads as what it was
    assert sorted(v.path for v in model.trainable_weights) == trainable    # the manifest's partition
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-6, atol=1e-6)
    train_step_contract(model, None, x)           # a step moves exactly those, inside TransformerEncoder too
    plain = keras.saving.load_model(out)          # Keras's own loader reads no manifest: all trainable
    assert type(plain).__name__ == "BertTextClassifier" and len(plain.trainable_weights) == 41

    exported = tmp_path / "serving"
    assert run_cli("export", out, "--format", "saved_model", "-o", exported)[0] == 0
    code, doc, _ = run_json("verify", exported, "--reference", out, "--checks", "partition,outputs")
    assert code == 0 and doc["ok"] is True, doc
    code, doc, _ = run_json("verify", out, "--reference", out, "--checks", "train-step")
    assert code == 0 and doc["checks"][0]["status"] == "pass", doc


def test_a_backbone_preset_fills_the_backbone_inside_a_task_never_its_head(hub, tmp_path):
    import mwconv
    folder, _, _, x, bert_preset, task_preset, _ = hub
    code, report, err = run_json("import", bert_preset, "--model", task_preset, "--allow-missing",
                                 "-o", tmp_path / "t.keras")
    assert code == 0, err
    assert report["missing"] == ["logits/kernel", "logits/bias"]     # the backbone's layers/dense is its pooler
    by_target = {w["target"]: w["source"] for w in report["weights"]}
    assert by_target["bert_backbone/pooled_dense/kernel"] == "layers/dense/vars/0"
    model = mwconv.load_model(tmp_path / "t.keras")
    import h5py
    with h5py.File(bert_preset / "model.weights.h5") as f:
        np.testing.assert_array_equal(model.get_layer("bert_backbone").get_layer("pooled_dense").kernel.numpy(),
                                      f["layers/dense/vars/0"][()])
    assert sorted(v.path for v in model.trainable_weights) == ["logits/bias", "logits/kernel"]


def test_a_backbone_as_model_from_a_factory_a_preset_or_its_config(hub, tmp_path):
    import mwconv
    folder, factory, module, x, bert_preset, _, _ = hub
    bb = module.backbone()
    _moved(bb, 3)
    np.savez(tmp_path / "bb.npz", **{w.path: np.asarray(w.value) for w in bb.weights})
    expected = np.asarray(bb(x)["sequence_output"])
    for spec in (f"{factory}:backbone", bert_preset, bert_preset / "config.json"):
        out = tmp_path / "bb.keras"
        code, report, err = run_json("import", tmp_path / "bb.npz", "--model", spec, "--layout", "keras",
                                     "--train", "pooled_dense/*", "-o", out, "--force")
        assert code == 0, (spec, err)
        assert sum(1 for w in report["weights"] if not w["trainable"]) == 37
        model = mwconv.load_model(out)
        assert type(model).__name__ == "BertBackbone"
        np.testing.assert_allclose(np.asarray(model(x)["sequence_output"]), expected, rtol=1e-6, atol=1e-6)
        assert [w["trainable"] for w in _manifest(out)["weights"]].count(True) == 2


def test_a_frozen_batchnorm_inside_a_keras_hub_model_keeps_its_statistics_under_fit(hub, tmp_path):
    """keras-hub's ResNet: every imported BatchNormalization runs in inference mode during fit
    (statistics fixed), as a frozen layer does in stock Keras; the head trains."""
    import mwconv
    from mwconv.testing import train_step_contract
    folder, factory, module, _, _, _, _ = hub
    model = module.resnet()
    _moved(model, 4)
    np.savez(tmp_path / "r.npz", **{w.path: np.asarray(w.value) for w in model.weights})
    code, report, err = run_json("import", tmp_path / "r.npz", "--model", f"{factory}:resnet", "--layout", "keras",
                                 "--train", "predictions/*", "-o", tmp_path / "r.keras")
    assert code == 0, err
    imported = mwconv.load_model(tmp_path / "r.keras")
    stats = {v.path: v.numpy().copy() for v in imported.weights if "moving" in v.path}
    assert len(stats) == 6          # three BatchNormalization layers
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 3)).astype("float32")
    after = train_step_contract(imported, None, x)
    for path, value in stats.items():            # the contract skips statistics: checked here, bit for bit
        assert after[path][0].tobytes() == value.tobytes(), path
    assert sorted(v.path for v in imported.trainable_weights) == ["predictions/bias", "predictions/kernel"]


def test_a_hostile_preset_config_is_refused_before_it_allocates(hub, tmp_path):
    import shutil
    _, _, _, _, bert_preset, _, _ = hub
    bad = tmp_path / "bad_preset"
    shutil.copytree(bert_preset, bad)
    config = json.loads((bad / "config.json").read_text())
    config["config"]["vocabulary_size"] = 400_000_000          # 25.6 GB of embeddings, in a 30 kB preset
    (bad / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("import", bad, "-o", tmp_path / "m.keras")
    assert code == 3 and not (tmp_path / "m.keras").exists()
    assert "the BertBackbone config declares weights of at least 25,600,000,0" in err and "refused before allocating" in err

    config["config"]["vocabulary_size"] = 100
    config["config"]["activation"] = {"class_name": "function", "config": "eval", "module": "builtins"}
    (bad / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("import", bad, "-o", tmp_path / "m.keras")
    assert code == 3 and "builtins" in err and not (tmp_path / "m.keras").exists()

    archive = tmp_path / "bert.keras"          # the same config inside a .keras archive: bounded the same way
    keras_hub.models.BertBackbone.from_preset(str(bert_preset)).save(archive)
    with zipfile.ZipFile(archive) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    stored = json.loads(members["config.json"])
    stored["config"]["vocabulary_size"] = 400_000_000
    members["config.json"] = json.dumps(stored).encode()
    with zipfile.ZipFile(tmp_path / "huge.keras", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    code, _, err = run_cli("import", tmp_path / "huge.keras", "-o", tmp_path / "m.keras")
    assert code == 3 and "the model's config declares weights of at least 25,600,000,0" in err, err

    hf_style = tmp_path / "hf_dir"
    hf_style.mkdir()
    (hf_style / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16}))
    code, _, err = run_cli("import", hf_style, "-o", tmp_path / "m.keras")
    assert code == 3 and "holds neither saved_model.pb (a SavedModel) nor a keras-hub config.json" in err


def _hf_io(name):
    return dict(np.load(os.path.join(HF, name, "io.npz")))


HF_CASES = {
    "bert": ("bert", lambda io: {"token_ids": io["in_input_ids"], "segment_ids": io["in_token_type_ids"],
                                    "padding_mask": io["in_attention_mask"]},
             lambda y: [y["sequence_output"], y["pooled_output"]], ["out_last_hidden_state", "out_pooler_output"]),
    "bert_classifier": ("bert_classifier", lambda io: {"token_ids": io["in_input_ids"],
                                                       "segment_ids": io["in_token_type_ids"],
                                                       "padding_mask": io["in_attention_mask"]},
                        lambda y: [y], ["out_logits"]),
    "vit": ("vit", lambda io: io["in_pixel_values"].transpose(0, 2, 3, 1), lambda y: [y],
            ["out_last_hidden_state"]),
    "gpt2": ("gpt2", lambda io: {"token_ids": io["in_input_ids"], "padding_mask": io["in_attention_mask"]},
             lambda y: [y], ["out_last_hidden_state"]),
}


def _map(name):
    """The shipped map, or for the classifier the example that includes it and adds the head."""
    return os.path.join(ROOT, "examples", "hf_bert_classifier.rules") if name == "bert_classifier" else f"hf-{name}"


@pytest.mark.parametrize("name", sorted(HF_CASES))
def test_a_hugging_face_checkpoint_into_its_keras_hub_backbone_with_the_shipped_rules(tmp_path, name, monkeypatch):
    """``save_pretrained`` checkpoints (tests/data/hf_state_dicts, written by transformers)
    import with ``--map hf-NAME`` into the keras-hub backbone that examples/hf_keras_hub.py
    builds from the checkpoint's config.json: the outputs transformers computed, every weight
    frozen."""
    import mwconv
    function, feed, outputs, keys = HF_CASES[name]
    io = _hf_io(name)
    monkeypatch.setenv("HF_CONFIG", os.path.join(HF, name, "config.json"))
    code, report, err = run_json("import", os.path.join(HF, name, "model.safetensors"), "--model",
                                 f"{EXAMPLE}:{function}", "--map", _map(name), "-o", tmp_path / "m.keras")
    assert code == 0, err
    assert report["missing"] == [] and report["unused"] == [] and not any(w["trainable"] for w in report["weights"])
    model = mwconv.load_model(tmp_path / "m.keras")
    for got, key in zip(outputs(model(feed(io))), keys):
        np.testing.assert_allclose(np.asarray(got), io[key], rtol=1e-5, atol=2e-6, err_msg=f"{name} {key}")


def test_hugging_face_checkpoints_regenerated_by_transformers_import_the_same(tmp_path, monkeypatch):
    """Where torch and transformers install, the checkpoints are written again here, with
    other random values, and must import with transformers' numbers just the same."""
    pytest.importorskip("torch", reason="torch is not installed (the committed checkpoints are tested above)")
    pytest.importorskip("transformers", reason="transformers is not installed")
    import importlib.util

    import mwconv
    spec = importlib.util.spec_from_file_location("make_hf", os.path.join(HF, "..", "make_hf_state_dicts.py"))
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    for name, model in make.models().items():
        io = make.write(name, model, str(tmp_path / name), seed=5)
        function, feed, outputs, keys = HF_CASES[name]
        source = tmp_path / name / "model.safetensors"
        monkeypatch.setenv("HF_CONFIG", str(tmp_path / name / "config.json"))
        code, _, err = run_json("import", source, "--model", f"{EXAMPLE}:{function}", "--map", _map(name),
                                "-o", tmp_path / f"{name}.keras")
        assert code == 0, err
        for got, key in zip(outputs(mwconv.load_model(tmp_path / f"{name}.keras")(feed(io))), keys):
            np.testing.assert_allclose(np.asarray(got), io[key], rtol=1e-5, atol=2e-6)


def test_the_shipped_rules_and_their_syntax(tmp_path):
    from mwconv.convert.rules import load_rules, parse_rules
    from mwconv.errors import UsageError
    from mwconv.maps import shipped
    assert sorted(shipped()) == ["hf-bert", "hf-gpt2", "hf-vit"]
    vit = load_rules("hf-vit")
    hit = next(r.apply("encoder.layer.11.layernorm_before.weight") for r in vit
               if r.apply("encoder.layer.11.layernorm_before.weight"))
    assert hit == "vit_encoder/transformer_block_12/ln_1/gamma"          # \g<1+1>
    gpt2 = load_rules("hf-gpt2")
    split = next(r for r in gpt2 if r.apply("h.3.attn.c_attn.weight"))
    assert split.apply("h.3.attn.c_attn.weight").split("|")[2] == "transformer_layer_3/self_attention/value/kernel"
    assert split.transform == "split,reshape"
    with pytest.raises(UsageError, match="'split' and a target list 'a|b|c' go together"):
        parse_rules("w -> a/kernel split\n")
    with pytest.raises(UsageError, match="group .3 but the regex has 1 groups"):
        parse_rules(r"l(\d+) -> b_\g<3+1>/kernel" + "\n")
    classifier = load_rules(os.path.join(ROOT, "examples", "hf_bert_classifier.rules"))
    assert classifier[0].origin == "hf-bert" and classifier[0].label == "rule:hf-bert:8"
    assert [r.label for r in classifier[-2:]] == ["rule:6", "rule:7"]          # its own lines, after the include
    (tmp_path / "loop.rules").write_text("include loop.rules\n")
    with pytest.raises(UsageError, match="includes nest more than 4 deep"):
        load_rules(tmp_path / "loop.rules")
    (tmp_path / "hf-bert").write_text("x -> y\n")            # a file of that name wins over the shipped one
    assert [r.target for r in load_rules(tmp_path / "hf-bert")] == ["y"]
