"""The partition check: every weight of the reference in the artifact with the same
path, shape, dtype, trainable flag and bytes; nothing extra; no untracked state."""

import os
import re

import numpy as np

from mwconv import modelio
from mwconv.manifest import sha256_array
from mwconv.verification.report import FAIL, PASS, SKIPPED, Check


def _entry(value, trainable, load):
    value = np.asarray(value)
    finite = value.dtype.kind != "f" or bool(np.isfinite(value).all())
    return {"shape": list(value.shape), "dtype": value.dtype.name, "trainable": trainable,
            "sha256": sha256_array(value), "finite": finite, "load": load}


def _hashed(items, bar=None):
    """Entries from ``(path, value, trainable, load)`` items, hashing on a few threads while at most
    a few values are in memory (hashlib releases the GIL); ``bar.update(nbytes)`` as each is done."""
    from concurrent.futures import ThreadPoolExecutor

    def done(path, future):
        out[path] = future.result()
        if bar is not None:
            bar.update(int(np.prod(out[path]["shape"], dtype=np.int64)) * np.dtype(out[path]["dtype"]).itemsize)

    out, pending = {}, []
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, value, trainable, load in items:
            pending.append((path, pool.submit(_entry, value, trainable, load)))
            del value
            if len(pending) >= workers:
                done(*pending.pop(0))
        for path, future in pending:
            done(path, future)
    return out


def entries_from_model(model):
    """``{path: entry}`` of a Keras model, hashed one weight at a time (values are read again
    only to describe a mismatch)."""
    variables = {v.path: v for v in model.weights}

    def load(path):
        return lambda: modelio.weight_array(variables[path])

    from mwconv import progress
    total = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in model.weights)
    with progress.tensor_bar(f"hashing {len(model.weights)} weights", total) as bar:
        return _hashed(((p, v, t, load(p)) for p, v, t in modelio.iter_weights(model)), bar)


def entries_from_manifest(manifest):
    return {w["path"]: {"shape": w["shape"], "dtype": w["dtype"], "trainable": w["trainable"], "sha256": w["sha256"]}
            for w in manifest.get("weights", [])}


def entries_from_artifact(art):
    weights = art.weights()
    if weights is None:
        return None
    return _hashed((p, v, t, (lambda p=p: art.weight(p))) for p, v, t in weights)


def _ulps(a, b):
    if a.dtype != b.dtype or a.shape != b.shape or a.dtype.kind != "f":
        return ""
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    i = np.unravel_index(np.argmax(diff), diff.shape)
    spacing = np.spacing(np.abs(b[i]).astype(a.dtype)).astype(np.float64)
    ulps = diff[i] / spacing if spacing else float("inf")
    return f" (max abs diff {diff[i]:.3g} = {ulps:.0f} ulp at index {tuple(int(x) for x in i)})"



_AUTO_NAMED = re.compile(r"(.*/)?variable(_\d+)?$")


def _strip(path, prefixes):
    for prefix in prefixes:
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def pair_paths(ref_paths, art_paths, prefixes=()):
    """``({reference path: artifact path}, notes)`` for weights that are the same weight
    under another path:

    - a model-name prefix that comes and goes: Keras 3 puts it on the weights of a named
      Sequential built in memory (``seqnet/fc/kernel``) but not on the same model
      reloaded (``fc/kernel``);
    - weights made by ``add_weight`` without a name: Keras numbers those per session
      (``layer/variable_3``), so they are paired by position inside their layer, where
      the counts agree.
    """
    missing = [p for p in ref_paths if p not in art_paths]
    extra = [p for p in art_paths if p not in ref_paths]
    pairs, notes = {}, []
    by_stripped = {_strip(q, prefixes): q for q in extra}
    for p in missing:
        q = by_stripped.get(_strip(p, prefixes))
        if q is not None and q not in pairs.values():
            pairs[p] = q
    if pairs:
        notes.append(f"{len(pairs)} weights paired after dropping the model-name prefix "
                     f"({' or '.join(repr(x) for x in prefixes)})")

    def groups(paths):
        out = {}
        for p in paths:
            m = _AUTO_NAMED.match(_strip(p, prefixes))
            if m:
                out.setdefault(m.group(1) or "", []).append(p)
        return out

    left = groups([p for p in missing if p not in pairs])
    right = groups([q for q in extra if q not in pairs.values()])
    auto = 0
    for layer, refs in left.items():
        if len(right.get(layer, [])) == len(refs):
            pairs.update(zip(refs, right[layer]))
            auto += len(refs)
    if auto:
        notes.append(f"{auto} unnamed weights (add_weight without a name) paired by position in their layer")
    return pairs, notes


def _weight_problems(path, ref, a):
    if list(a["shape"]) != list(ref["shape"]) or a["dtype"] != ref["dtype"]:
        return [f"weight '{path}': {a['dtype']}{tuple(a['shape'])} in the artifact, "
                f"{ref['dtype']}{tuple(ref['shape'])} in the reference"]
    problems = []
    if a["trainable"] is not None and a["trainable"] != ref["trainable"]:
        state = {True: "trainable", False: "frozen"}
        problems.append(f"weight '{path}' is {state[ref['trainable']]} in the reference but "
                        f"{state[a['trainable']]} in the artifact")
    if a["sha256"] != ref["sha256"]:
        extra = _ulps(np.asarray(a["load"]()), np.asarray(ref["load"]())) if "load" in a and "load" in ref else ""
        problems.append(f"weight '{path}' value differs from the reference{extra}")
    return problems


def check_partition(art, ref_entries, untracked=(), prefixes=()):
    got = entries_from_artifact(art)
    note = ""
    if got is None:
        if not art.manifest:
            return Check("partition", SKIPPED, f"a {art.kind} artifact without an mwconv manifest names no weights")
        got = entries_from_manifest(art.manifest)
        note = f"; {art.kind} keeps no trainable flags, compared its embedded manifest"
    paired, pairing_notes = pair_paths(list(ref_entries), list(got), prefixes)
    problems = []
    for path, ref in ref_entries.items():
        found = paired.get(path, path)
        if found not in got:
            problems.append(f"weight '{path}' is missing from the artifact")
        else:
            problems += _weight_problems(path, ref, got[found])
    matched = set(ref_entries) | set(paired.values())
    problems += [f"extra weight '{p}' in the artifact (not in the reference)" for p in got if p not in matched]
    problems += list(untracked)
    note += "".join(f"; {n}" for n in pairing_notes)
    frozen = sum(1 for e in ref_entries.values() if not e["trainable"])
    flags = "" if any(e["trainable"] is not None for e in got.values()) else "; the artifact records no trainable flags"
    details = {"nonfinite": nonfinite_weights(ref_entries)}
    if problems:
        return Check("partition", FAIL, f"{len(problems)} problems in {len(ref_entries)} weights{note}", problems,
                     details)
    return Check("partition", PASS, f"{len(ref_entries)} weights ({frozen} frozen, {len(ref_entries) - frozen} "
                 f"trainable): same paths, shapes, dtypes, flags and sha256{flags}{note}", details=details)


def nonfinite_weights(entries):
    """Paths of weights holding NaN or Inf (imported with --allow-nonfinite, or trained into it)."""
    return [p for p, e in entries.items() if not e.get("finite", True)]


def untracked_problems(ref_items, art):
    """One line per layer variable that Keras does not track, in the reference (``ref_items``:
    ``modelio.untracked_variables`` of it) or the artifact."""
    seen, lines = set(), []
    art_model = art.loaded_model() if art is not None else None
    art_items = modelio.untracked_variables(art_model) if art_model is not None else []
    for where, items in (("reference", ref_items), ("artifact", art_items)):
        for layer, attr, cls in items:
            if (layer, attr) in seen:
                continue
            seen.add((layer, attr))
            lines.append(f"layer '{layer}' holds '{attr}', a {cls} that Keras does not track (in the {where}): it "
                         "is never saved, and a reloaded model gets whatever the layer's constructor makes; create "
                         f"it with self.add_weight(...) in build() so that '{attr}' is saved and restored")
    return lines
