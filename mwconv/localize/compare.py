"""``mwconv compare SOURCE MODEL``: where the numbers of an imported model part from its source.

The source and the model run on the same probe; every tensor of the source that a Keras
layer of the model computes is compared with that layer's output, in the source's graph
order. Each tensor's tolerance is grounded in the source itself: the source runs a second
time on the probe moved by a few ulps (``verification.floor``), and how far each tensor
moves is its noise floor. The first tensor whose error passes its tolerance is the first
divergence: the layer that is wrong (its inputs still agree, its output does not).

Peak memory: the imported model and the source's rebuilt graph (ONNX) or model (tf-keras),
plus every paired tensor of the probe on both sides and the source's again on the perturbed
probe. ``benchmarks/compare_memory.py`` measures it (the README gives the figures).
"""

import os

import numpy as np

from mwconv import modelio
from mwconv.errors import UsageError
from mwconv.localize.result import Comparison, Row
from mwconv.verification import probes
from mwconv.verification.compare import compare_arrays
from mwconv.verification.floor import FLOOR_MULTIPLE, MAX_FACTOR, ULPS, grounded, noise, perturbed, scale_of


def _load_model(path):
    from mwconv.formats import open_source
    with open_source(path) as src:
        if src.format != "keras":
            raise UsageError("MODEL must be a .keras file (an imported or exported Keras model); compare a "
                             "SavedModel or ONNX export with `mwconv verify ARTIFACT --reference MODEL.keras`",
                             path=path)
        return src.architecture()


def _source_side(path, model):
    from mwconv.formats import open_source
    from mwconv.localize.sides import KerasSide, OnnxSide
    src = open_source(path)
    if src.format == "onnx":
        return OnnxSide(src, model)
    if getattr(src, "tf_keras_model", None) is not None and src.has_architecture:
        source_model, reason = src.tf_keras_model()
        if source_model is None:
            raise UsageError(f"cannot run this source layer by layer: {reason}", path=path)
        return KerasSide(source_model, model, path, tf_keras=True)
    if src.architecture_kind == "keras":
        return KerasSide(src.architecture(), model, path, tf_keras=False)
    raise UsageError(f"a {src.format} source without architecture cannot run; compare needs an ONNX graph, a "
                     "Keras full-model .h5 or a .keras file", path=path)


def _probe(model, inputs, samples, seed):
    specs = modelio.input_specs(model)
    if inputs is not None:
        return probes.load_inputs(inputs, specs)
    return probes.random_inputs(specs, samples, seed, probes.vocabulary(model))


def compare(source, model, *, inputs=None, samples=2, seed=0, atol=None, rtol=None):
    """Compare every intermediate tensor of ``source`` (an ONNX file, a tf-keras/Keras
    full-model .h5 or a .keras) with the layer of ``model`` (the imported .keras, a path or a
    Keras model) that computes it. Returns a Comparison (truthy when nothing diverges).

    >>> result = compare("model.onnx", "model.keras")          # doctest: +SKIP
    >>> result.first_divergence.layer if result.first_divergence else None
    'conv2'
    """
    label = os.fspath(model) if not hasattr(model, "layers") else f"in-memory model '{model.name}'"
    keras_model = _load_model(os.fspath(model)) if not hasattr(model, "layers") else model
    side = _source_side(os.fspath(source), keras_model)
    probe = _probe(keras_model, inputs, samples, seed)
    from mwconv.localize.sides import model_tensors
    got = model_tensors(keras_model, side.pairs, probe)
    del keras_model
    want = side.run(probe, None)
    grounded_floor = atol is None and rtol is None
    floors = [noise(a, b) for a, b in zip(want, side.run(perturbed(probe), None))] if grounded_floor else None
    rows = _rows(side, got, want, floors, atol, rtol)
    tolerance = {"kind": side.comparison, "grounded": grounded_floor, "atol": atol, "rtol": rtol, "ulps": ULPS,
                 "multiple": FLOOR_MULTIPLE, "max_factor": MAX_FACTOR}
    return Comparison(os.fspath(source), label, side.kind, rows, tolerance,
                      {"samples": int(next(iter(probe.values())).shape[0]) if probe else 0, "seed": seed,
                       "inputs": None if inputs is None else os.fspath(inputs)}, side.notes)


def _matched(got, want):
    """``got`` in ``want``'s layout: as it is, or with the channels axis moved (NHWC <-> NCHW)."""
    if got.shape == want.shape or got.ndim < 3:
        return got, None
    for layout, moved in (("channels_last", np.moveaxis(got, -1, 1)), ("channels_first", np.moveaxis(got, 1, -1))):
        if moved.shape == want.shape:
            return moved, layout
    return got, None


def _rows(side, got, want, floors, atol, rtol):
    rows, by_tensor = [], {}
    for i, (pair, g, w) in enumerate(zip(side.pairs, got, want)):
        w = np.asarray(w)
        row = Row(i, pair, shape=list(w.shape))
        if g is None:
            row.status = "unpaired"
        else:
            g, row.layout = _matched(np.asarray(g), w)
            floor = floors[i] if floors is not None else None
            row.atol, row.rtol, row.factor = grounded(side.comparison, w.dtype if w.dtype.kind == "f" else np.float32,
                                                      floor, atol, rtol)
            row.noise_floor, row.scale = floor, scale_of(w)
            if g.shape != w.shape:
                row.status = "shape mismatch"
                row.model_shape = list(g.shape)
            else:
                ok, max_abs, max_rel = compare_arrays(g, w, row.atol, row.rtol)
                row.max_abs, row.max_rel = (v if np.isfinite(v) else None for v in (max_abs, max_rel))
                row.status = "ok" if ok else "diverges"
        feeding = [by_tensor.get(side.aliases.get(t, t)) for t in pair.inputs]
        errors = [r.max_abs for r in feeding if r is not None and r.max_abs is not None]
        row.inputs_max_abs = max(errors) if errors else (0.0 if not any(feeding) else None)
        if row.status in ("diverges", "shape mismatch") and any(r is not None and r.failed for r in feeding):
            row.status = "inherits"
        by_tensor[pair.tensor] = row
        rows.append(row)
    return rows
