"""``mwconv verify``: prove that an artifact kept the frozen/trainable
partition, the exact weight values and the outputs; that frozen weights stay
frozen under training; and that every device agrees.

>>> report = verify("serving/", reference="model.keras")   # doctest: +SKIP
>>> bool(report), report.check("partition").status
(True, 'pass')
"""

import contextlib
import os
import re

import numpy as np

from mwconv.errors import UsageError
from mwconv.manifest import sha256_array
from mwconv import modelio
from mwconv.verification import probes
from mwconv.verification.artifacts import open_artifact
from mwconv.verification.compare import compare_devices, compare_outputs
from mwconv.verification.report import CHECKS, FAIL, PASS, SKIPPED, Check, VerifyReport

STATISTICS = ("moving_mean", "moving_variance")


# -- the reference ---------------------------------------------------------
def _reference(reference):
    if reference is None:
        return None, "the artifact's manifest"
    keras = modelio.keras_api()
    if isinstance(reference, keras.Model):
        return reference, f"in-memory model '{reference.name}'"
    path = os.fspath(reference)
    from mwconv.sources import open_source
    with open_source(path) as src:
        if src.architecture_kind == "keras":
            return src.architecture(), path
    raise UsageError("--reference must be a .keras file, a Keras full-model .h5 or a Keras model object "
                     "(other sources go to --source)", path=path)


def _entries_from_model(model):
    return {p: {"shape": list(v.shape), "dtype": v.dtype.name, "trainable": t, "sha256": sha256_array(v), "value": v}
            for p, (v, t) in modelio.weights_by_path(model).items()}


def _entries_from_manifest(manifest):
    return {w["path"]: {"shape": w["shape"], "dtype": w["dtype"], "trainable": w["trainable"], "sha256": w["sha256"]}
            for w in manifest.get("weights", [])}


def _entries_from_artifact(art):
    weights = art.weights()
    if weights is None:
        return None
    return {p: {"shape": list(v.shape), "dtype": v.dtype.name, "trainable": t, "sha256": sha256_array(v), "value": v}
            for p, (v, t) in weights.items()}


def _ulps(a, b):
    if a.dtype != b.dtype or a.shape != b.shape or a.dtype.kind != "f":
        return ""
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    i = np.unravel_index(np.argmax(diff), diff.shape)
    spacing = np.spacing(np.abs(b[i]).astype(a.dtype)).astype(np.float64)
    ulps = diff[i] / spacing if spacing else float("inf")
    return f" (max abs diff {diff[i]:.3g} = {ulps:.0f} ulp at index {tuple(int(x) for x in i)})"


# -- checks ---------------------------------------------------------------------
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
        extra = _ulps(a["value"], ref["value"]) if "value" in a and "value" in ref else ""
        problems.append(f"weight '{path}' value differs from the reference{extra}")
    return problems


def check_partition(art, ref_entries, untracked=(), prefixes=()):
    got = _entries_from_artifact(art)
    note = ""
    if got is None:
        if not art.manifest:
            return Check("partition", SKIPPED, f"a {art.kind} artifact without an mwconv manifest names no weights")
        got = _entries_from_manifest(art.manifest)
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
    if problems:
        return Check("partition", FAIL, f"{len(problems)} problems in {len(ref_entries)} weights{note}", problems)
    return Check("partition", PASS, f"{len(ref_entries)} weights ({frozen} frozen, {len(ref_entries) - frozen} "
                 f"trainable): same paths, shapes, dtypes, flags and sha256{flags}{note}")


def check_outputs(art, ref_outputs, names, inputs, atol, rtol, hints):
    got = art.run(inputs)
    ok, rows, problems = compare_outputs(names, got, ref_outputs, art.kind, atol, rtol)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    if ok:
        return Check("outputs", PASS, f"{len(rows)} outputs match (max abs error {worst:.3g})", details={"outputs": rows})
    problems += hints
    return Check("outputs", FAIL, f"{len(problems) - len(hints)} of {len(names)} outputs differ beyond tolerance",
                 problems, {"outputs": rows})


def check_train_step(art, inputs, ref_outputs):
    model = art.keras_model()
    if model is None:
        return Check("train-step", SKIPPED, f"{art.kind} artifacts do not reload as trainable Keras models")
    keras = modelio.keras_api()
    before = modelio.weights_by_path(model)
    rng = np.random.default_rng(7)
    targets = [rng.standard_normal(np.shape(o)).astype(np.float32) for o in ref_outputs]
    packed = modelio.pack_inputs(model, inputs)
    if model.trainable_weights:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        model.train_on_batch(packed, targets[0] if len(targets) == 1 else targets)
    else:
        model(packed, training=True)  # nothing to optimise; still run the layers in training mode
    after = modelio.weights_by_path(model)
    problems, statistics, no_grad = [], [], []
    owners = {v.path: layer for layer in model._flatten_layers(include_self=False) for v in layer._trainable_variables
              + layer._non_trainable_variables}
    for path, (value, trainable) in before.items():
        changed = value.tobytes() != after[path][0].tobytes()
        if trainable and not changed:
            no_grad.append(path)
        elif not trainable and changed:
            layer = owners.get(path)
            if path.endswith(STATISTICS) and "BatchNormalization" in type(layer).__name__:
                statistics.append(path)
            else:
                problems.append(f"frozen weight '{path}' changed during one training step: layer "
                                f"'{getattr(layer, 'name', '?')}' assigns to it in call()")
    frozen = sum(1 for _, t in before.values() if not t)
    trainable = len(before) - frozen
    msg = (f"{frozen - len(statistics) - len(problems)} of {frozen} frozen weights bit-identical, "
           f"{trainable - len(no_grad)} of {trainable} trainable weights changed")
    if statistics:
        msg += f"; {len(statistics)} BatchNormalization statistics updated (expected)"
    if no_grad:
        msg += f"; no gradient reaches: {', '.join(no_grad)}"
    details = {"statistics": statistics, "no_gradient": no_grad}
    return Check("train-step", FAIL if problems else PASS, msg, problems, details)


def _tf32_switches(enabled):
    """(set, restore) pairs for every loaded framework's TF32 switch."""
    import sys

    out = []
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        old = tf.config.experimental.tensor_float_32_execution_enabled()
        out.append((lambda: tf.config.experimental.enable_tensor_float_32_execution(enabled),
                    lambda: tf.config.experimental.enable_tensor_float_32_execution(old)))
    if "torch" in sys.modules:
        import torch
        old_mm, old_cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        out.append((lambda: (setattr(torch.backends.cuda.matmul, "allow_tf32", enabled),
                             setattr(torch.backends.cudnn, "allow_tf32", enabled)),
                    lambda: (setattr(torch.backends.cuda.matmul, "allow_tf32", old_mm),
                             setattr(torch.backends.cudnn, "allow_tf32", old_cudnn))))
    if "jax" in sys.modules:
        import jax
        old_precision = jax.config.jax_default_matmul_precision
        out.append((lambda: jax.config.update("jax_default_matmul_precision", "tensorfloat32" if enabled
                                              else "highest"),
                    lambda: jax.config.update("jax_default_matmul_precision", old_precision)))
    return out


@contextlib.contextmanager
def tf32_mode(enabled):
    """TF32 matmuls/convolutions on GPUs on or off (TensorFlow, torch, JAX), restored afterwards."""
    switches = _tf32_switches(enabled)
    try:
        for turn, _ in switches:
            turn()
        yield
    finally:
        for _, restore in reversed(switches):
            restore()


def tf32_disabled():
    """Full float32 matmuls/convolutions on GPUs for the comparison."""
    return tf32_mode(False)


def check_devices(art, inputs, names, devices=None, atol=None, rtol=None):
    listed = list(dict.fromkeys(devices or art.devices()))
    gpus = [d for d in listed if "GPU" in d.upper() or "CUDA" in d.upper()]
    if devices is None and not gpus:
        return Check("devices", SKIPPED, "no GPU visible", details={"devices": listed})
    if len(listed) < 2:
        return Check("devices", SKIPPED, f"only one device ({listed[0] if listed else 'none'})",
                     details={"devices": listed})
    with tf32_disabled():
        results = {d: art.run(inputs, device=d) for d in listed}
    return device_check(results, names, atol, rtol)


def device_check(results, names, atol=None, rtol=None):
    """The comparison half of the device check (testable with any results)."""
    ok, rows, problems = compare_devices(results, names, atol, rtol)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    devices = list(results)
    details = {"devices": devices, "tf32": "disabled", "comparisons": rows}
    if ok:
        return Check("devices", PASS, f"{len(devices)} devices agree ({', '.join(devices)}; max abs diff {worst:.3g}); "
                     "TF32 disabled for the comparison", details=details)
    return Check("devices", FAIL, f"devices disagree ({', '.join(devices)}); TF32 disabled for the comparison",
                 problems, details)


def _recorded_source(manifest):
    files = {(p.get("source_file"), p.get("source_sha256")) for p in
             (w.get("provenance") for w in (manifest or {}).get("weights", [])) if p}
    if len(files) != 1:
        return None
    (path, sha), = files
    return path if path and os.path.exists(path) else None


def run_source(path, inputs):
    """Outputs of the original source on ``inputs``, or (None, reason)."""
    from mwconv.sources import open_source
    with open_source(path) as src:
        fmt, arch = src.format, src.has_architecture
    if fmt == "onnx":
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feed = {}
        for i in sess.get_inputs():
            if i.name not in inputs:
                return None, f"the source's input '{i.name}' is not among the artifact's inputs"
            arr = inputs[i.name]
            if len(i.shape) != arr.ndim or any(isinstance(d, int) and d != s for d, s in zip(i.shape, arr.shape)):
                return None, f"the source's input '{i.name}' has shape {i.shape}, the probe {arr.shape} (other layout)"
            feed[i.name] = arr.astype(np.int64) if "int64" in i.type else arr
        return sess.run(None, feed), None
    if fmt == "hdf5" and arch:
        import h5py
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
        if b"Lambda" in (config if isinstance(config, bytes) else str(config).encode()):
            return None, "the source holds a Lambda layer, which is not run (unsafe)"
        from mwconv._quiet import import_quietly
        tf_keras = import_quietly("tf_keras")
        model = tf_keras.models.load_model(path, compile=False)
        names = [t.name.split(":")[0] for t in model.inputs]
        feed = [inputs[n] for n in names] if all(n in inputs for n in names) else None
        if feed is None:
            return None, f"the source's inputs {names} are not the artifact's"
        out = model(feed if len(feed) > 1 else feed[0], training=False)
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])], None
    if fmt == "keras":
        art = open_artifact(path)
        return art.run(inputs), None
    return None, f"a {fmt} source {'with' if arch else 'without'} architecture cannot run"


def check_source(art, source, inputs, names, atol, rtol):
    source = source or _recorded_source(art.manifest)
    if source is None:
        return Check("source", SKIPPED, "no runnable source recorded in the manifest (pass --source)")
    outputs, reason = run_source(source, inputs)
    if outputs is None:
        return Check("source", SKIPPED, reason, details={"source": source})
    got = art.run(inputs)
    if [np.shape(o) for o in outputs] != [np.shape(o) for o in got]:
        return Check("source", SKIPPED, "the source's outputs differ in number or shape from the artifact's "
                     "(the import changed the architecture)", details={"source": source})
    ok, rows, problems = compare_outputs(names, got, outputs, "source", atol, rtol)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    if ok:
        return Check("source", PASS, f"outputs equal the source model's ({os.path.basename(source)}; max abs error "
                     f"{worst:.3g})", details={"source": source, "outputs": rows})
    return Check("source", FAIL, f"outputs differ from the source model's ({os.path.basename(source)})", problems,
                 {"source": source, "outputs": rows})


# -- the whole run ---------------------------------------------------------------
def untracked_problems(ref_model, art):
    """One line per layer variable that Keras does not track, in the reference or the artifact."""
    seen, lines = set(), []
    for where, model in (("reference", ref_model), ("artifact", art.loaded_model())):
        if model is None:
            continue
        for layer, attr, cls in modelio.untracked_variables(model):
            if (layer, attr) in seen:
                continue
            seen.add((layer, attr))
            lines.append(f"layer '{layer}' holds '{attr}', a {cls} that Keras does not track (in the {where}): it "
                         "is never saved, and a reloaded model gets whatever the layer's constructor makes; create "
                         f"it with self.add_weight(...) in build() so that '{attr}' is saved and restored")
    return lines


def _probe(ref_model, art, inputs, samples, seed):
    """Probe inputs keyed by the reference's input names and, where they differ, the artifact's too."""
    specs = modelio.input_specs(ref_model) if ref_model is not None else art.input_specs()
    if inputs is not None:
        probe = probes.load_inputs(inputs, specs)
    else:
        vocab = probes.vocabulary(ref_model) if ref_model is not None else None
        probe = probes.random_inputs(specs, samples, seed, vocab)
    notes = []
    if ref_model is not None:
        aliases = modelio.align_inputs(specs, art.input_specs())
        for art_name, ref_name in aliases.items():
            probe[art_name] = probe[ref_name]
        if aliases:
            notes.append("inputs matched by position (names differ): " + ", ".join(
                f"reference '{r}' = artifact '{a}'" for a, r in aliases.items()))
    return probe, notes


def _model_prefixes(ref_model, art):
    names = [m.name for m in (ref_model, art.loaded_model()) if m is not None]
    return tuple(dict.fromkeys(f"{n}/" for n in names))


def _run_checks(selected, ctx):
    art, ref_model, probe, names, ref_outputs = ctx["art"], ctx["ref"], ctx["probe"], ctx["names"], ctx["outputs"]
    table = {
        "partition": lambda: check_partition(art, _entries_from_model(ref_model) if ref_model is not None
                                             else _entries_from_manifest(art.manifest), ctx["untracked"],
                                             _model_prefixes(ref_model, art)),
        "outputs": lambda: (check_outputs(art, ref_outputs, names, probe, ctx["atol"], ctx["rtol"], ctx["hints"])
                            if ref_outputs is not None else
                            Check("outputs", SKIPPED, "no reference model to compare with (pass --reference)")),
        "train-step": lambda: check_train_step(art, probe, ref_outputs if ref_outputs is not None
                                               else art.run(probe)),
        "devices": lambda: check_devices(art, probe, names, ctx["devices"], ctx["atol"], ctx["rtol"]),
        "source": lambda: check_source(art, ctx["source"], probe, names, ctx["atol"], ctx["rtol"]),
    }
    return [table[name]() for name in CHECKS if name in selected]


def verify(artifact, reference=None, *, inputs=None, samples=4, seed=0, atol=None, rtol=None, checks=None,
           require=(), devices=None, source=None):
    """Run the checks on ``artifact``; return a VerifyReport (truthy when nothing failed).

    ``reference``: a .keras path, Keras full-model .h5, or Keras model
    (functional or Sequential; inputs whose names differ from the artifact's
    are matched by position, and the report says so); None uses the
    artifact's manifest. ``inputs``: an .npz of probe inputs by input name.
    ``checks``: subset of partition, outputs, train-step, devices, source.
    ``require``: checks whose skip counts as a failure (e.g. "gpu").
    ``devices``: explicit device list for the device check.

    >>> report = verify("model.keras", reference=model)   # doctest: +SKIP
    >>> report.ok, report.notes
    (True, ["inputs matched by position (names differ): reference 'input_layer_3' = artifact 'input_layer'"])
    """
    selected = list(checks or CHECKS)
    require = ["devices" if r == "gpu" else r for r in require]
    unknown = [c for c in selected + list(require) if c not in CHECKS]
    if unknown:
        raise UsageError(f"unknown check {unknown[0]!r}; checks are {', '.join(CHECKS)} (and gpu for --require)")
    ref_model, ref_label = _reference(reference)
    art = open_artifact(artifact, ref_model)
    if ref_model is None and not art.manifest:
        raise UsageError("has no mwconv manifest to verify against; pass --reference", path=art.path)
    probe, notes = _probe(ref_model, art, inputs, samples, seed)
    untracked = untracked_problems(ref_model, art)
    ctx = {"art": art, "ref": ref_model, "probe": probe, "untracked": untracked, "atol": atol, "rtol": rtol,
           "names": modelio.output_names(ref_model) if ref_model is not None else art.output_names(),
           "outputs": modelio.call_model(ref_model, probe) if ref_model is not None else None,
           "hints": ["likely cause: " + u for u in untracked], "devices": devices, "source": source}
    results = _run_checks(selected, ctx)
    for check in results:
        if check.name in require and check.status == SKIPPED:
            check.status = FAIL
            check.problems.append(f"required by --require, but skipped: {check.message}")
    return VerifyReport(str(artifact), art.kind, ref_label, results, [], notes)
