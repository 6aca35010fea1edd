"""The outputs, train-step and source checks."""

import os

import numpy as np

from mwconv import modelio
from mwconv.errors import printable, shorten
from mwconv.layers.statistics import FIXED, OPTED_IN, TRAINS, model_statistics
from mwconv.manifest import sha256_array, sha256_file
from mwconv.verification.compare import compare_outputs
from mwconv.verification.report import FAIL, PASS, SKIPPED, Check


def localize_hint(source, artifact):
    """The failure line's pointer to ``mwconv compare``: the exact command."""
    import shlex
    return (f"to see which layer diverges first: mwconv compare {shlex.quote(os.fspath(source))} "
            f"{shlex.quote(os.fspath(artifact))} --report-html compare.html (or verify --localize)")


def _grounding(rows):
    factors = [r["factor"] for r in rows if r.get("factor", 1.0) > 1.0]
    return f"; tolerance x{max(factors):.3g} for the reference's noise floor" if factors else ""


def check_outputs(art, ref_outputs, names, inputs, atol, rtol, hints, floors=None, reference_path=None):
    got = art.run(inputs)
    ok, rows, problems = compare_outputs(names, got, ref_outputs, art.tolerance, atol, rtol, floors)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    if ok:
        return Check("outputs", PASS, f"{len(rows)} outputs match (max abs error {worst:.3g}{_grounding(rows)})",
                     details={"outputs": rows})
    differing = len(problems)
    problems += hints
    if reference_path is not None and str(art.path).endswith(".keras"):   # compare reaches .keras layers only
        problems.append(localize_hint(reference_path, art.path))
    return Check("outputs", FAIL, f"{differing} of {len(names)} outputs differ beyond tolerance",
                 problems, {"outputs": rows})


def _fingerprints(model):
    """``{path: (sha256, trainable)}``: one value in memory at a time, not a copy of every weight."""
    return {path: (sha256_array(value), trainable) for path, value, trainable in modelio.iter_weights(model)}


def _train_once(model, inputs, ref_outputs):
    keras = modelio.keras_api()
    rng = np.random.default_rng(7)
    targets = [rng.standard_normal(np.shape(o)).astype(np.float32) for o in ref_outputs]
    packed = modelio.pack_inputs(model, inputs)
    if model.trainable_weights:
        # metrics=[], not None: a keras-hub task compiled itself with accuracy for class labels,
        # and Keras keeps earlier metrics when compile is given None
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse", metrics=[])
        model.train_on_batch(packed, targets[0] if len(targets) == 1 else targets)
    else:
        model(packed, training=True)  # nothing to optimise; still run the layers in training mode


def _statistics_summary(updated):
    """One clause per kind of statistics update: of layers that train (as in stock Keras) and
    of frozen layers that opted in (update_statistics)."""
    parts = []
    for state, words in ((TRAINS, "of training layers"), (OPTED_IN, "of frozen layers that opted in "
                                                                    "(update_statistics)")):
        layers = sorted({layer for layer, s in updated.values() if s == state})
        if layers:
            parts.append(f"{sum(1 for _, s in updated.values() if s == state)} statistics {words} updated "
                         f"({shorten(layers, 5)})")
    return parts


def check_train_step(art, inputs, ref_outputs):
    """One optimizer step: frozen weights and frozen layers' statistics bit-identical, trainable
    weights with a gradient changed, statistics of training or opted-in layers free to move."""
    model = art.model_for_training()
    if model is None:
        return Check("train-step", SKIPPED, f"{art.kind} artifacts do not reload as trainable Keras models")
    before = _fingerprints(model)
    statistics = model_statistics(model)
    _train_once(model, inputs, ref_outputs)
    after = _fingerprints(model)
    problems, updated, no_grad = [], {}, []
    for path, (value, trainable) in before.items():
        changed = value != after[path][0]
        if trainable and not changed:
            no_grad.append(path)
        elif not trainable and changed:
            layer, state = statistics.get(path, (path.rsplit("/", 1)[0], None))
            if state in (TRAINS, OPTED_IN):
                updated[path] = (layer, state)
            elif state == FIXED:
                problems.append(f"statistic '{path}' of frozen layer '{layer}' changed during one training step: "
                                "a frozen BatchNormalization must run in inference mode (opt in per layer with "
                                "update_statistics / --update-statistics)")
            else:
                problems.append(f"frozen weight '{path}' changed during one training step: layer "
                                f"'{layer}' assigns to it in call()")
    frozen = sum(1 for _, t in before.values() if not t)
    trainable = len(before) - frozen
    msg = "; ".join([f"{frozen - len(updated) - len(problems)} of {frozen} frozen weights bit-identical, "
                     f"{trainable - len(no_grad)} of {trainable} trainable weights changed",
                     *_statistics_summary(updated)]
                    + ([f"no gradient reaches: {', '.join(no_grad)}"] if no_grad else []))
    details = {"statistics": sorted(p for p, (_, s) in updated.items() if s == TRAINS),
               "opted_in_statistics": sorted(p for p, (_, s) in updated.items() if s == OPTED_IN),
               "no_gradient": no_grad}
    return Check("train-step", FAIL if problems else PASS, msg, problems, details)


def recorded_source(manifest, artifact):
    """``(path, None)`` for the source that the artifact's manifest records, or ``(None,
    reason)``. The manifest is untrusted input: its path is looked up in the artifact's
    folder only (as recorded when relative, else by its file name), never outside it, and
    used only when the file's sha256 is the one recorded."""
    files = {(p.get("source_file"), p.get("source_sha256")) for p in
             (w.get("provenance") for w in (manifest or {}).get("weights", [])) if isinstance(p, dict)}
    if len(files) != 1:
        return None, "no runnable source recorded in the manifest (pass --source)"
    (path, sha), = files
    if not isinstance(path, str) or not path:
        return None, "no runnable source recorded in the manifest (pass --source)"
    folder = os.path.realpath(os.path.dirname(os.path.abspath(artifact)))
    names = ([path] if not os.path.isabs(path) else []) + [os.path.basename(path)]
    found = [c for c in (os.path.realpath(os.path.join(folder, n)) for n in names)
             if os.path.commonpath([folder, c]) == folder and os.path.isfile(c)]
    if not found:
        return None, (f"the recorded source {printable(path)} is not in the artifact's folder (a recorded path "
                      "outside it is never followed; pass --source to check it)")
    if not isinstance(sha, str) or sha256_file(found[0]) != sha:
        return None, (f"{printable(found[0])} is not the recorded source (its sha256 differs from the manifest's; "
                      "pass --source to check it anyway)")
    return found[0], None


def run_source(path, inputs):
    """Outputs of the original source on ``inputs``, or (None, reason)."""
    from mwconv.formats import open_source
    with open_source(path) as src:
        return src.run_model(inputs)


def check_source(art, source, inputs, names, atol, rtol):
    if source is None:
        source, reason = recorded_source(art.manifest, art.path)
        if source is None:
            return Check("source", SKIPPED, reason)
    outputs, reason = run_source(source, inputs)
    if outputs is None:
        return Check("source", SKIPPED, reason, details={"source": source})
    got = art.run(inputs)
    if [np.shape(o) for o in outputs] != [np.shape(o) for o in got]:
        return Check("source", SKIPPED, "the source's outputs differ in number or shape from the artifact's "
                     "(the import changed the architecture)", details={"source": source})
    floors = None
    if atol is None and rtol is None:
        from mwconv.verification.floor import noise, perturbed
        moved, _ = run_source(source, perturbed(inputs))
        floors = [noise(a, b) for a, b in zip(outputs, moved)] if moved is not None else None
    ok, rows, problems = compare_outputs(names, got, outputs, "source", atol, rtol, floors)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    if ok:
        return Check("source", PASS, f"outputs equal the source model's ({os.path.basename(source)}; max abs error "
                     f"{worst:.3g}{_grounding(rows)})", details={"source": source, "outputs": rows})
    if str(art.path).endswith(".keras"):
        problems.append(localize_hint(source, art.path))
    return Check("source", FAIL, f"outputs differ from the source model's ({os.path.basename(source)})", problems,
                 {"source": source, "outputs": rows})

