"""The manifest: every weight's path, shape, dtype, trainable flag, sha256 and
provenance, plus tool and library versions. It travels inside every artifact."""

import hashlib
import importlib.metadata
import json
import os

import numpy as np

SCHEMA_VERSION = 1


def sha256_array(arr):
    """sha256 of the array's bytes in C order, hashed where they lie (no copy when contiguous)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    return hashlib.sha256(flat.view(np.uint8) if flat.dtype.itemsize else b"").hexdigest()


def weight_array(variable):
    """The variable's value as a read-only NumPy array, without a copy where the backend
    allows: a CPU TensorFlow variable's value is viewed where it lies (TensorFlow copies
    on a later write to the variable, so the view keeps the value it was read with).
    A copy costs more than its memcpy: every fresh page of it is a page fault."""
    value = variable.value
    if hasattr(value, "read_value"):               # tf.Variable: a tensor sharing its buffer
        value = value.read_value()
    try:
        out = np.asarray(value)
    except (TypeError, RuntimeError, ValueError):  # torch (requires grad, or on a GPU), others
        import keras
        out = np.asarray(keras.ops.convert_to_numpy(value))
    if out.flags.writeable and out.base is not None:
        out = out.view()
        out.flags.writeable = False
    return out


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


def build_manifest(model, provenance=None, hashed=None, statistics=None, frozen_layers=None):
    """``provenance``: {weight path: {"source_file", "source_sha256", "tensor", "transform"}}.
    ``hashed``: {weight path: {"shape", "dtype", "sha256"}} already computed from this model
    (verify's reference summary), which spares hashing those weights again. ``statistics``:
    {weight path: "fixed" | "opted-in" | "trains"} for moving statistics, recorded so that a
    drift check of a format without Keras layers (ONNX) knows which may move.
    ``frozen_layers``: paths of custom layers frozen whole whose sub-layers' flags no config
    holds (mwconv's loader freezes them again)."""
    from concurrent.futures import ThreadPoolExecutor

    trainable = {id(v) for v in model.trainable_weights}
    hashed = hashed or {}

    def entry(v):
        known = hashed.get(v.path)
        if known is not None:
            shape, dtype, digest = list(known["shape"]), known["dtype"], known["sha256"]
        else:
            value = weight_array(v)
            shape, dtype, digest = list(value.shape), value.dtype.name, sha256_array(value)
        out = {"path": v.path, "shape": shape, "dtype": dtype, "trainable": id(v) in trainable, "sha256": digest,
               "provenance": (provenance or {}).get(v.path)}
        if v.path in (statistics or {}):
            out["statistics"] = statistics[v.path]
        return out

    from mwconv import progress

    todo = [v for v in model.weights if v.path not in hashed]
    if not todo:                  # every hash known: no pass over the weights, no bar
        return _with_layers({"schema_version": SCHEMA_VERSION, "tool": versions(), "model": model.name,
                             "weights": [entry(v) for v in model.weights]}, frozen_layers)
    total = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in todo)
    # hashlib releases the GIL: large models hash on every core
    with progress.tensor_bar(f"hashing {len(todo)} weights", total) as bar, \
            ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        weights = []
        for item in pool.map(entry, model.weights):
            weights.append(item)
            if item["path"] not in hashed:
                bar.update(int(np.prod(item["shape"], dtype=np.int64)) * np.dtype(item["dtype"]).itemsize)
    return _with_layers({"schema_version": SCHEMA_VERSION, "tool": versions(), "model": model.name,
                         "weights": weights}, frozen_layers)


def _with_layers(manifest, frozen_layers):
    if frozen_layers:
        manifest["frozen_layers"] = list(frozen_layers)
    return manifest


def dumps(manifest):
    return json.dumps(manifest, indent=1, sort_keys=False)
