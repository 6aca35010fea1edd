"""Pure comparison logic: tolerances and output/device comparisons."""

import numpy as np

# (atol, rtol) by comparison class and dtype class. A format's outputs compare as
# "exact" (TensorFlow/Keras reloads: the same kernels) or "onnx" (another runtime);
# "device" and "source" are the device and source checks.
TOLERANCES = {
    ("exact", "f32"): (1e-6, 1e-5), ("onnx", "f32"): (1e-4, 1e-3),
    ("device", "f32"): (1e-5, 1e-4), ("source", "f32"): (1e-5, 1e-4),
    ("exact", "f16"): (1e-2, 1e-2), ("onnx", "f16"): (5e-2, 5e-2),
    ("device", "f16"): (1e-2, 1e-2), ("source", "f16"): (5e-2, 5e-2),
}


def tolerance(kind, dtype, atol=None, rtol=None):
    cls = "f16" if np.dtype(dtype).itemsize <= 2 and np.dtype(dtype).kind == "f" else "f32"
    default_atol, default_rtol = TOLERANCES.get((kind, cls), (1e-6, 1e-5))
    return (default_atol if atol is None else atol), (default_rtol if rtol is None else rtol)


def compare_arrays(got, want, atol, rtol):
    """Return (passed, max_abs, max_rel) of ``got`` against ``want``."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False, float("inf"), float("inf")
    if got.size == 0:
        return True, 0.0, 0.0
    nan_mismatch = np.isnan(got) != np.isnan(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))     # equal infinities and NaN = NaN count as equal
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(got - want))
        scale = np.where(same, 0.0, np.abs(want))
        rel = diff / np.maximum(scale, np.finfo(np.float32).tiny)
    mismatch = nan_mismatch | (~same & (np.isinf(got) | np.isinf(want)))   # an Inf matches only itself
    ok = bool(np.all(diff[~mismatch] <= atol + rtol * scale[~mismatch]) and not mismatch.any())
    if mismatch.any():
        return ok, float("inf"), float("inf")
    return ok, float(diff.max()), float(rel.max())


def _fmt(value):
    return "NaN/Inf mismatch" if value is None else f"{value:.3g}"


def compare_outputs(names, got, want, kind, atol=None, rtol=None, floors=None):
    """Compare lists of outputs; return (passed, per-output rows, problems). ``floors``: the
    reference's noise floor per output (``floor.py``), which scales the default tolerances."""
    from mwconv.verification.floor import grounded
    rows, problems = [], []
    if len(got) != len(want):
        return False, rows, [f"artifact gives {len(got)} outputs, reference {len(want)}"]
    for i, (name, g, w) in enumerate(zip(names, got, want)):
        floor = floors[i] if floors is not None and i < len(floors) else None
        a, r, factor = grounded(kind, np.asarray(w).dtype, floor, atol, rtol)
        row = {"output": name, "passed": False, "max_abs": None, "max_rel": None, "atol": a, "rtol": r,
               "noise_floor": floor, "factor": factor}
        if np.shape(g) != np.shape(w):
            problems.append(f"output '{name}': shape {np.shape(g)} vs reference {np.shape(w)}")
            rows.append(row)
            continue
        ok, max_abs, max_rel = compare_arrays(g, w, a, r)
        max_abs, max_rel = (v if np.isfinite(v) else None for v in (max_abs, max_rel))  # JSON has no inf
        row.update(passed=ok, max_abs=max_abs, max_rel=max_rel)
        rows.append(row)
        if not ok:
            grounding = f"; the reference's noise floor {floor:.3g}" if floor else ""
            problems.append(f"output '{name}': max abs error {_fmt(max_abs)} (atol {a:.3g}), max rel error "
                            f"{_fmt(max_rel)} (rtol {r:.3g}{grounding})")
    return not problems, rows, problems


def compare_devices(results, names, atol=None, rtol=None):
    """``results``: {device: [outputs]}; the first device is the baseline.
    Return (passed, rows, problems)."""
    devices = list(results)
    base = devices[0]
    rows, problems = [], []
    for dev in devices[1:]:
        ok, per_output, probs = compare_outputs(names, results[dev], results[base], "device", atol, rtol)
        for row in per_output:
            rows.append({"device": dev, "baseline": base, **row})
        problems += [f"{dev} vs {base}: {p}" for p in probs]
    return not problems, rows, problems
