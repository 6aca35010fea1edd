"""The manifest: every weight's path, shape, dtype, trainable flag, sha256 and
provenance, plus tool and library versions. It travels inside every artifact."""

import hashlib
import importlib.metadata
import json
import os

import numpy as np

SCHEMA_VERSION = 1


def sha256_array(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def sha256_file(path, block=1 << 24):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def versions():
    from mwconv import __version__
    out = {"mwconv": __version__}
    for dist in ("keras", "tensorflow", "numpy", "h5py", "onnx", "onnxruntime", "tf2onnx"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(model, provenance=None):
    """``provenance``: {weight path: {"source_file", "source_sha256", "tensor", "transform"}}."""
    import keras

    from concurrent.futures import ThreadPoolExecutor

    trainable = {id(v) for v in model.trainable_weights}

    def entry(v):
        value = np.asarray(keras.ops.convert_to_numpy(v.value))
        return {"path": v.path, "shape": list(value.shape), "dtype": value.dtype.name,
                "trainable": id(v) in trainable, "sha256": sha256_array(value),
                "provenance": (provenance or {}).get(v.path)}

    from mwconv import progress

    total = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in model.weights)
    # hashlib releases the GIL: large models hash on every core
    with progress.tensor_bar(f"hashing {len(model.weights)} weights", total) as bar, \
            ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        weights = []
        for item in pool.map(entry, model.weights):
            weights.append(item)
            bar.update(int(np.prod(item["shape"], dtype=np.int64)) * np.dtype(item["dtype"]).itemsize)
    return {"schema_version": SCHEMA_VERSION, "tool": versions(), "model": model.name, "weights": weights}


def dumps(manifest):
    return json.dumps(manifest, indent=1, sort_keys=False)
