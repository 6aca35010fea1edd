"""Write tests/data/hf_onnx/: Hugging Face transformers models at small random configs
(seeded; nothing downloaded), exported by PyTorch's exporter (``torch.onnx.export``, opset
17, eval mode, ``dynamo=False``) with a fixed sequence of 12 token ids, their last hidden
state as the output; and ``<name>_any_size.onnx``, the same models exported with a dynamic
batch and sequence axis (``dynamic_axes``). The tests read these files where torch and transformers are not
installed (CI); they check mwconv's import against onnxruntime on them.

    python tests/data/make_hf_onnx.py          # needs torch and transformers
"""

import os
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = dict(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=32)


def models():
    import transformers as t
    return {
        "bert": t.BertModel(t.BertConfig(**SMALL)),
        "roberta": t.RobertaModel(t.RobertaConfig(**SMALL, pad_token_id=1)),
        "albert": t.AlbertModel(t.AlbertConfig(**SMALL, embedding_size=8)),
        "distilbert": t.DistilBertModel(t.DistilBertConfig(vocab_size=100, dim=16, n_layers=2, n_heads=2,
                                                           hidden_dim=32, max_position_embeddings=32)),
        "gpt2": t.GPT2Model(t.GPT2Config(vocab_size=100, n_embd=16, n_layer=2, n_head=2, n_positions=32)),
    }


def main():
    import torch
    import transformers
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    out = os.path.join(HERE, "hf_onnx")
    os.makedirs(out, exist_ok=True)

    class LastHidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model(input_ids=ids).last_hidden_state

    for name, model in models().items():
        ids = torch.randint(2, 100, (1, 12))
        torch.onnx.export(LastHidden(model.eval()), (ids,), os.path.join(out, f"{name}.onnx"), opset_version=17,
                          input_names=["input_ids"], output_names=["last_hidden_state"], dynamo=False)
        axes = {0: "batch", 1: "sequence"}
        torch.onnx.export(LastHidden(model), (ids,), os.path.join(out, f"{name}_any_size.onnx"), opset_version=17,
                          input_names=["input_ids"], output_names=["last_hidden_state"], dynamo=False,
                          dynamic_axes={"input_ids": axes, "last_hidden_state": axes})
    with open(os.path.join(out, "VERSION"), "w") as f:
        f.write(f"torch {torch.__version__}, transformers {transformers.__version__}, opset 17, "
                "torch.onnx.export(dynamo=False), input_ids (1, 12); *_any_size.onnx: dynamic batch and sequence\n")


if __name__ == "__main__":
    main()
