"""Write tests/data/hf_state_dicts/: Hugging Face transformers models at small random configs
(seeded; nothing downloaded), each saved by ``save_pretrained`` (``config.json`` and
``model.safetensors``, as the Hub holds them), with ``io.npz``: the inputs and the outputs
transformers computes for them in eval mode. The tests import these checkpoints into the
keras-hub backbone of the same configuration with the rules mwconv ships (``--map hf-bert``,
``hf-vit``, ``hf-gpt2``) where transformers is not installed (CI), and regenerate them to
compare where it is.

    python tests/data/make_hf_state_dicts.py          # needs torch and transformers
"""

import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def models():
    import transformers as t
    bert = dict(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=24, hidden_act="gelu_new")     # keras-hub's BERT: tanh GELU
    return {
        "bert": t.BertModel(t.BertConfig(**bert)),
        "bert_classifier": t.BertForSequenceClassification(t.BertConfig(**bert, num_labels=3)),
        "vit": t.ViTModel(t.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=16,
                                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)),
        "gpt2": t.GPT2Model(t.GPT2Config(vocab_size=100, n_embd=16, n_layer=2, n_head=2, n_positions=24)),
    }


def inputs(name, rng):
    if name == "vit":
        return {"pixel_values": rng.standard_normal((2, 3, 16, 16)).astype("float32")}
    ids = rng.integers(0, 100, (2, 12)).astype("int64")
    mask = np.ones((2, 12), "int64")
    mask[1, 9:] = 0                                      # the second sequence is padded
    feed = {"input_ids": ids, "attention_mask": mask}
    if name.startswith("bert"):
        feed["token_type_ids"] = np.concatenate([np.zeros((2, 6), "int64"), np.ones((2, 6), "int64")], 1)
    return feed


def write(name, model, folder, seed=0):
    """Save ``model`` to ``folder`` and its reference io; returns the io dict."""
    import torch
    rng = np.random.default_rng(seed)
    with torch.no_grad():                  # a random init's biases and norms are 0 and 1: move them all
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)) * 0.05)
    model.eval()
    model.save_pretrained(folder)
    feed = inputs(name, rng)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    io = {f"in_{k}": v for k, v in feed.items()}
    if getattr(out, "logits", None) is not None:
        io["out_logits"] = out.logits.numpy()
    else:
        io["out_last_hidden_state"] = out.last_hidden_state.numpy()
    if getattr(out, "pooler_output", None) is not None:
        io["out_pooler_output"] = out.pooler_output.numpy()
    np.savez(os.path.join(folder, "io.npz"), **io)
    return io


def main(out=os.path.join(HERE, "hf_state_dicts")):
    import torch
    import transformers
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    for name, model in models().items():
        write(name, model, os.path.join(out, name))
    with open(os.path.join(out, "VERSIONS"), "w") as f:
        f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
