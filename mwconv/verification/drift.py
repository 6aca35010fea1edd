"""The drift check (``verify ARTIFACT --baseline IMPORTED.keras``): after
fine-tuning, every weight frozen in the baseline is still in the artifact, still
frozen and bit-identical; trainable weights may change (how many, how far);
weights added since (adapters, a new head) are listed.

Allowed to move, and reported apart: the moving statistics of layers that train
(in the baseline or the artifact) or opted in (``update_statistics``), and the
weights a later training stage unfroze on purpose (``--allow-unfrozen GLOB``).
"""

import fnmatch

import numpy as np

from mwconv.errors import shorten
from mwconv.layers.statistics import FIXED, model_statistics
from mwconv.manifest import weight_array
from mwconv.verification.partition import entries_from_artifact, entries_from_manifest, pair_paths
from mwconv.verification.report import FAIL, PASS, SKIPPED, Check


class Baseline:
    """The baseline summarised once, then released: hashes and flags of every weight, the
    values of its trainable weights (to say how far they moved) and its statistics layers."""

    def __init__(self, reference):
        model = reference.model
        self.label, self.name = reference.label, model.name
        reference.summarize(None, want_entries=True, want_outputs=False, want_architecture=reference.path is not None)
        self.entries = {p: {k: v for k, v in e.items() if k != "load"} for p, e in reference.entries.items()}
        self.statistics = model_statistics(model)
        self.values = {v.path: np.array(weight_array(v)) for v in model.weights
                       if self.entries.get(v.path, {}).get("trainable")}
        self.reference = reference


def _artifact_entries(art):
    got = entries_from_artifact(art)
    if got is None and art.manifest:
        return entries_from_manifest(art.manifest), art.manifest
    return got, None


def _artifact_statistics(art, manifest):
    """``{path: state}`` of the artifact's statistics: from its Keras model where it has one,
    else as its manifest recorded them."""
    model = art.loaded_model()
    if model is not None:
        return {p: state for p, (_, state) in model_statistics(model).items()}
    return {w["path"]: w["statistics"] for w in (manifest or {}).get("weights", []) if w.get("statistics")}


def _max_change(baseline_value, load):
    if load is None or baseline_value is None:
        return None
    value = np.asarray(load())
    if value.shape != baseline_value.shape or value.dtype.kind not in "fiu":
        return None
    return float(np.max(np.abs(value.astype(np.float64) - baseline_value.astype(np.float64)))) if value.size else 0.0


class _Tally:
    def __init__(self):
        self.problems, self.changed, self.unfrozen, self.statistics, self.removed = [], [], [], [], []
        self.identical = 0


def _frozen_weight(path, ref, found, tally, ctx):
    """One weight frozen in the baseline, found in the artifact as ``found``."""
    base, allow, art_stats = ctx
    layer = base.statistics.get(path, (path.rsplit("/", 1)[0], None))[0]
    if found["trainable"]:
        if any(fnmatch.fnmatchcase(path, g) for g in allow):
            change = _max_change(base.values.get(path), found.get("load")) if found["sha256"] != ref["sha256"] else 0.0
            tally.unfrozen.append({"path": path, "max_abs": change})
        else:
            tally.problems.append(f"weight '{path}' is frozen in the baseline but trainable in the artifact (pass "
                                  f"--allow-unfrozen '{layer}/*' if a later training stage unfroze it on purpose)")
        return
    if found["sha256"] == ref["sha256"]:
        tally.identical += 1
        return
    if path in base.statistics:
        states = {base.statistics[path][1], art_stats.get(path)}
        unfrozen = any(u["path"].startswith(layer + "/") for u in tally.unfrozen)
        if states - {FIXED, None} or unfrozen:
            tally.statistics.append(path)
            return
        tally.problems.append(f"statistic '{path}' of frozen layer '{layer}' moved since the baseline: a frozen "
                              "BatchNormalization must run in inference mode (opt in with update_statistics)")
        return
    tally.problems.append(f"frozen weight '{path}' moved since the baseline")


def check_drift(art, baseline, allow_unfrozen=(), prefixes=()):
    if baseline is None:
        return Check("drift", SKIPPED, "no --baseline given (the imported .keras to compare a fine-tuned model with)")
    got, manifest = _artifact_entries(art)
    if got is None:
        return Check("drift", SKIPPED, f"a {art.kind} artifact without an mwconv manifest names no weights")
    paired, notes = pair_paths(list(baseline.entries), list(got), prefixes)
    art_stats = _artifact_statistics(art, manifest)
    tally = _Tally()
    # frozen weights last, so that a layer's unfrozen parameters are known before its statistics
    order = sorted(baseline.entries, key=lambda p: (not baseline.entries[p]["trainable"], p in baseline.statistics))
    for path in order:
        ref = baseline.entries[path]
        found = got.get(paired.get(path, path))
        if found is None:
            if ref["trainable"]:
                tally.removed.append(path)
            else:
                tally.problems.append(f"frozen weight '{path}' of the baseline is missing from the artifact")
        elif ref["trainable"]:
            if found["sha256"] != ref["sha256"]:
                tally.changed.append({"path": path, "max_abs": _max_change(baseline.values.get(path),
                                                                           found.get("load"))})
        else:
            _frozen_weight(path, ref, found, tally, (baseline, allow_unfrozen, art_stats))
    matched = set(baseline.entries) | set(paired.values())
    added = [p for p in got if p not in matched]
    return _drift_check(baseline, tally, added, notes)


def _moved(rows):
    known = [r for r in rows if r["max_abs"] is not None]
    if not known:
        return ""
    worst = max(known, key=lambda r: r["max_abs"])
    return f" (max abs change {worst['max_abs']:.3g}, '{worst['path']}')"


def _drift_check(baseline, tally, added, notes):
    frozen = sum(1 for e in baseline.entries.values() if not e["trainable"])
    trainable = len(baseline.entries) - frozen
    parts = [f"{tally.identical} of {frozen} frozen weights bit-identical to the baseline",
             f"{len(tally.changed)} of {trainable} trainable weights changed{_moved(tally.changed)}"]
    if tally.unfrozen:
        parts.append(f"{len(tally.unfrozen)} unfrozen since the baseline (--allow-unfrozen){_moved(tally.unfrozen)}")
    if tally.statistics:
        parts.append(f"{len(tally.statistics)} statistics of training or opted-in layers updated")
    if added:
        parts.append(f"{len(added)} added: {shorten(added, 5)}")
    if tally.removed:
        parts.append(f"{len(tally.removed)} trainable weights of the baseline gone: {shorten(tally.removed, 5)}")
    parts += notes
    details = {"baseline": baseline.label, "frozen_identical": tally.identical, "changed": tally.changed,
               "unfrozen": tally.unfrozen, "statistics": tally.statistics, "added": added, "removed": tally.removed}
    status = FAIL if tally.problems else PASS
    return Check("drift", status, "; ".join(parts), tally.problems, details)
