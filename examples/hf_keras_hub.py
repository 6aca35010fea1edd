"""keras-hub backbones built from a Hugging Face ``config.json``, as targets for the rules
mwconv ships (``--map hf-bert``, ``hf-vit``, ``hf-gpt2``)::

    HF_CONFIG=bert/config.json mwconv import bert/model.safetensors \\
        --model examples/hf_keras_hub.py:bert --map hf-bert -o bert.keras

``HF_CONFIG`` names the checkpoint's ``config.json`` (default: ``config.json`` here). Each
function maps the config's fields onto the backbone's arguments, as the rules file's header
says; the layer-norm epsilon and activation are the two that keras-hub's defaults may not
match (see the README's "Shipped rules").
"""

import json
import os


def _config(path=None):
    with open(path or os.environ.get("HF_CONFIG", "config.json"), encoding="utf-8") as f:
        return json.load(f)


def bert(config=None):
    import keras_hub
    c = config or _config()
    return keras_hub.models.BertBackbone(
        vocabulary_size=c["vocab_size"], num_layers=c["num_hidden_layers"], num_heads=c["num_attention_heads"],
        hidden_dim=c["hidden_size"], intermediate_dim=c["intermediate_size"],
        max_sequence_length=c["max_position_embeddings"], num_segments=c.get("type_vocab_size", 2))


def vit(config=None):
    import keras_hub
    c = config or _config()
    size = c["image_size"]
    return keras_hub.models.ViTBackbone(
        image_shape=(size, size, c["num_channels"]), patch_size=(c["patch_size"],) * 2,
        num_layers=c["num_hidden_layers"], num_heads=c["num_attention_heads"], hidden_dim=c["hidden_size"],
        mlp_dim=c["intermediate_size"], use_mha_bias=c.get("qkv_bias", True),
        layer_norm_epsilon=c.get("layer_norm_eps", 1e-12))


def gpt2(config=None):
    import keras_hub
    c = config or _config()
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=c["vocab_size"], num_layers=c["n_layer"], num_heads=c["n_head"], hidden_dim=c["n_embd"],
        intermediate_dim=c.get("n_inner") or 4 * c["n_embd"], max_sequence_length=c["n_positions"])


def bert_classifier(config=None):
    """``BertForSequenceClassification``'s keras-hub twin: ``BertTextClassifier`` with as many
    classes as the config's labels (no preprocessor: feed token ids). Rules:
    examples/hf_bert_classifier.rules."""
    import keras_hub
    c = config or _config()
    return keras_hub.models.BertTextClassifier(backbone=bert(c), num_classes=len(c.get("id2label") or [0, 1]),
                                               preprocessor=None)
