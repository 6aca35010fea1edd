"""Probe inputs: from the user's .npz, or seeded random values that respect
the input signature (integer ids stay inside every embedding's vocabulary)."""

import numpy as np

from mwconv import _compat
from mwconv.errors import InputRejected, UsageError, os_reason

EMBEDDING_CLASSES = ("Embedding", "FrozenEmbedding")


def vocabulary(model):
    """The smallest input_dim of the model's embedding layers, or None."""
    sizes = [getattr(layer, "input_dim", None) for layer in _compat.flatten_layers(model, include_self=False)
             if type(layer).__name__ in EMBEDDING_CLASSES]
    sizes = [s for s in sizes if s]
    return min(sizes) if sizes else None


def random_inputs(specs, samples=4, seed=0, vocab=None):
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, dtype in specs:
        dims = [samples if i == 0 and d is None else (8 if d is None else int(d)) for i, d in enumerate(shape)]
        dt = np.dtype(dtype)
        if dt.kind in "iu":
            out[name] = rng.integers(0, vocab or 10, size=dims).astype(dt)
        elif dt.kind == "b":
            out[name] = rng.random(dims) < 0.5
        else:
            out[name] = rng.standard_normal(dims).astype(dt)
    return out


def load_inputs(path, specs):
    """Read ``--inputs``: one array per input name (also ``input:<name>`` keys, as the fixtures write)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k[len("input:"):] if k.startswith("input:") else k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise InputRejected(os_reason(e) or f"cannot read probe inputs ({e})", path=path) from e
    out = {}
    for name, shape, dtype in specs:
        if name not in arrays:
            raise UsageError(f"holds no array for input '{name}' (has {sorted(arrays)})", path=path)
        array = arrays[name]
        if array.ndim != len(shape) or any(d is not None and d != a for d, a in zip(shape, array.shape)):
            expected = tuple("N" if d is None else d for d in shape)
            raise UsageError(f"its array for input '{name}' has shape {array.shape}; the model takes {expected}",
                             path=path)
        out[name] = array.astype(np.dtype(dtype), copy=False)
    return out
