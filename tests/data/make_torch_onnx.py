"""Write the ONNX files under tests/data/torch_onnx/ with PyTorch's exporter
(``torch.onnx.export``, opset 17, eval mode, seeded random weights), so that the
tests read the files PyTorch writes even where torch is not installed. Where it
is, the tests export the same blocks live instead. Also a ResNet18 state dict
(narrow widths) written by ``safetensors.torch`` to tests/data/torch_resnet18.safetensors.

    python tests/data/make_torch_onnx.py
"""

import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.torch_blocks import ANY_SIZE, BLOCKS, DYNAMIC, export, save_state_dict  # noqa: E402


def main():
    import torch
    warnings.filterwarnings("ignore")
    out = os.path.join(HERE, "torch_onnx")
    os.makedirs(out, exist_ok=True)
    for name in BLOCKS:
        export(name, os.path.join(out, f"{name}.onnx"))
    for name in DYNAMIC:
        export(name, os.path.join(out, f"{name}_dynamic.onnx"), dynamic_batch=True)
    for name in ANY_SIZE:
        export(name, os.path.join(out, f"{name}_any_size.onnx"), any_size=True)
    save_state_dict(os.path.join(HERE, "torch_resnet18.safetensors"))
    with open(os.path.join(out, "VERSION"), "w") as f:
        f.write(f"torch {torch.__version__}, opset 17, torch.onnx.export(dynamo=False)\n")


if __name__ == "__main__":
    main()
