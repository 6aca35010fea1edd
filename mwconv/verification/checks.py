"""The outputs, train-step and source checks."""

import os

import numpy as np

from mwconv import modelio
from mwconv.manifest import sha256_array
from mwconv.verification.compare import compare_outputs
from mwconv.verification.report import FAIL, PASS, SKIPPED, Check

STATISTICS = ("moving_mean", "moving_variance")



def check_outputs(art, ref_outputs, names, inputs, atol, rtol, hints):
    got = art.run(inputs)
    ok, rows, problems = compare_outputs(names, got, ref_outputs, art.tolerance, atol, rtol)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    if ok:
        return Check("outputs", PASS, f"{len(rows)} outputs match (max abs error {worst:.3g})", details={"outputs": rows})
    problems += hints
    return Check("outputs", FAIL, f"{len(problems) - len(hints)} of {len(names)} outputs differ beyond tolerance",
                 problems, {"outputs": rows})


def _fingerprints(model):
    """``{path: (sha256, trainable)}``: one value in memory at a time, not a copy of every weight."""
    return {path: (sha256_array(value), trainable) for path, value, trainable in modelio.iter_weights(model)}


def check_train_step(art, inputs, ref_outputs):
    model = art.model_for_training()
    if model is None:
        return Check("train-step", SKIPPED, f"{art.kind} artifacts do not reload as trainable Keras models")
    keras = modelio.keras_api()
    before = _fingerprints(model)
    rng = np.random.default_rng(7)
    targets = [rng.standard_normal(np.shape(o)).astype(np.float32) for o in ref_outputs]
    packed = modelio.pack_inputs(model, inputs)
    if model.trainable_weights:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        model.train_on_batch(packed, targets[0] if len(targets) == 1 else targets)
    else:
        model(packed, training=True)  # nothing to optimise; still run the layers in training mode
    after = _fingerprints(model)
    problems, statistics, no_grad = [], [], []
    owners = {v.path: layer for layer in model._flatten_layers(include_self=False) for v in layer._trainable_variables
              + layer._non_trainable_variables}
    for path, (value, trainable) in before.items():
        changed = value != after[path][0]
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


def _recorded_source(manifest):
    files = {(p.get("source_file"), p.get("source_sha256")) for p in
             (w.get("provenance") for w in (manifest or {}).get("weights", [])) if p}
    if len(files) != 1:
        return None
    (path, sha), = files
    return path if path and os.path.exists(path) else None


def run_source(path, inputs):
    """Outputs of the original source on ``inputs``, or (None, reason)."""
    from mwconv.formats import open_source
    with open_source(path) as src:
        return src.run_model(inputs)


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

