"""Rules files mwconv ships for common checkpoint pairs, usable by name: ``--map hf-bert``.

Each ``NAME.rules`` here maps a Hugging Face transformers state dict (``model.safetensors``
as ``save_pretrained`` writes it) onto the keras-hub backbone of the same configuration. A
``--map`` value that names no file but one of these loads it; the README lists them.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def shipped():
    """``{name: path}`` of the rules files shipped with mwconv."""
    return {f[:-len(".rules")]: os.path.join(HERE, f) for f in sorted(os.listdir(HERE)) if f.endswith(".rules")}


def resolve(value):
    """The rules file ``--map VALUE`` names: the file at that path, else a shipped one by name."""
    text = os.fspath(value)
    if os.path.exists(text) or os.sep in text or text.endswith((".rules", ".txt")):
        return value
    return shipped().get(text, value)
