"""``mwconv verify``: prove that an artifact kept the frozen/trainable
partition, the exact weight values and the outputs; that frozen weights stay
frozen under training; and that every device agrees.

Each check is a function of one context (``Context``) in the table ``CHECK_FUNCTIONS``;
the checks themselves live in ``partition``, ``checks`` and ``devices``.

>>> report = verify("serving/", reference="model.keras")   # doctest: +SKIP
>>> bool(report), report.check("partition").status
(True, 'pass')
"""

import dataclasses
import os

from mwconv import modelio
from mwconv.errors import UsageError
from mwconv.formats import open_artifact
from mwconv.options import VerifyOptions
from mwconv.verification import probes
from mwconv.verification.checks import check_outputs, check_source, check_train_step
from mwconv.verification.drift import Baseline, check_drift
from mwconv.verification.devices import check_devices, device_check, tf32_disabled, tf32_mode
from mwconv.verification.partition import (
    check_partition, entries_from_manifest, pair_paths, untracked_problems,
)
from mwconv.verification.reference import Reference
from mwconv.verification.report import CHECKS, FAIL, SKIPPED, Check, VerifyReport

__all__ = ["CHECK_FUNCTIONS", "Context", "device_check", "pair_paths", "tf32_disabled", "tf32_mode", "verify"]


def _reference(reference):
    """A Reference (None when the artifact's manifest is the reference)."""
    if reference is None:
        return None
    if isinstance(reference, Reference):
        return reference
    keras = modelio.keras_api()
    if isinstance(reference, keras.Model):
        return Reference(reference, f"in-memory model '{reference.name}'")
    path = os.fspath(reference)
    from mwconv.formats import open_source
    with open_source(path) as src:
        if src.architecture_kind == "keras":
            return Reference(src.architecture(), path, path=path)
    raise UsageError("--reference must be a .keras file, a Keras full-model .h5 or a Keras model object "
                     "(other sources go to --source)", path=path)


def _baseline(options):
    """The drift check's baseline, summarised and released (None without --baseline)."""
    if options.baseline is None or "drift" not in options.checks:
        return None
    baseline = Baseline(_reference(options.baseline))
    baseline.reference.release()
    return baseline


def _probe(ref, options, art=None):
    """Probe inputs keyed by the reference's input names (from the artifact without a reference)."""
    specs = ref.specs if ref is not None else art.input_specs()
    if options.inputs is not None:
        return probes.load_inputs(options.inputs, specs)
    return probes.random_inputs(specs, options.samples, options.seed, ref.vocab if ref is not None else None)


def _align(ref, art, probe):
    """Add the artifact's input names to the probe where they differ from the reference's."""
    if ref is None:
        return []
    aliases = modelio.align_inputs(ref.specs, art.input_specs())
    for art_name, ref_name in aliases.items():
        probe[art_name] = probe[ref_name]
    if not aliases:
        return []
    return ["inputs matched by position (names differ): " + ", ".join(
        f"reference '{r}' = artifact '{a}'" for a, r in aliases.items())]


@dataclasses.dataclass
class Context:
    """Everything a check needs: the artifact, the reference, the probe and the options."""

    art: object
    ref: object                 # Reference, or None (the manifest is the reference)
    options: VerifyOptions
    probe: dict
    names: list                 # output names
    outputs: list               # the reference's outputs on the probe, or None
    untracked: list             # problems: variables Keras does not track
    baseline: object = None     # drift.Baseline, or None

    @property
    def prefixes(self):
        names = [m.name for m in (self.ref, self.art.loaded_model(), self.baseline) if m is not None]
        return tuple(dict.fromkeys(f"{n}/" for n in names))


def _partition(ctx):
    if ctx.ref is None and not ctx.art.manifest:
        return Check("partition", SKIPPED, "no reference and no mwconv manifest in the artifact (pass --reference); "
                     "the drift check compares it with --baseline")
    reference = ctx.ref.entries if ctx.ref is not None else entries_from_manifest(ctx.art.manifest)
    return check_partition(ctx.art, reference, ctx.untracked, ctx.prefixes)


def _outputs(ctx):
    if ctx.outputs is None:
        return Check("outputs", SKIPPED, "no reference model to compare with (pass --reference)")
    hints = ["likely cause: " + u for u in ctx.untracked]
    return check_outputs(ctx.art, ctx.outputs, ctx.names, ctx.probe, ctx.options.atol, ctx.options.rtol, hints,
                         ctx.ref.floors, ctx.ref.path)


def _train_step(ctx):
    return check_train_step(ctx.art, ctx.probe, ctx.outputs if ctx.outputs is not None else ctx.art.run(ctx.probe))


def _devices(ctx):
    return check_devices(ctx.art, ctx.probe, ctx.names, ctx.options.devices, ctx.options.atol, ctx.options.rtol)


def _source(ctx):
    return check_source(ctx.art, ctx.options.source, ctx.probe, ctx.names, ctx.options.atol, ctx.options.rtol)


def _drift(ctx):
    return check_drift(ctx.art, ctx.baseline, ctx.options.allow_unfrozen, ctx.prefixes)


CHECK_FUNCTIONS = {"partition": _partition, "outputs": _outputs, "train-step": _train_step, "devices": _devices,
                   "source": _source, "drift": _drift}


def verify(artifact, reference=None, *, options=None, format_name=None, **fields):
    """Run the checks on ``artifact``; return a VerifyReport (truthy when nothing failed).

    ``reference``: a .keras path, Keras full-model .h5, or Keras model
    (functional or Sequential; inputs whose names differ from the artifact's
    are matched by position, and the report says so); None uses the
    artifact's manifest. ``options`` is a VerifyOptions, else one is built from
    ``fields``: ``inputs`` (.npz of probe inputs by name), ``samples``, ``seed``,
    ``atol``, ``rtol``, ``checks`` (subset of partition, outputs, train-step,
    devices, source, drift), ``require`` (checks whose skip is a failure, e.g. "gpu"),
    ``devices``, ``source``, ``baseline`` (the imported .keras or a Keras model: the drift
    check), ``allow_unfrozen`` (globs of weights a later training stage unfroze on
    purpose). ``format_name`` when the caller knows the format.

    >>> report = verify("model.keras", reference=model)   # doctest: +SKIP
    >>> report.ok, report.notes
    (True, ["inputs matched by position (names differ): reference 'input_layer_3' = artifact 'input_layer'"])
    """
    options = options or VerifyOptions(reference=reference, **fields)
    ref = _reference(options.reference if options.reference is not None else reference)
    probe = _probe(ref, options) if ref is not None else None
    if ref is not None:
        needs_outputs = bool({"outputs", "train-step"} & set(options.checks))
        ref.summarize(probe, "partition" in options.checks, needs_outputs, want_architecture=ref.path is not None)
        ref.release()                      # one model in memory at a time: the artifact's comes next
    baseline = _baseline(options)
    architecture = ref if ref is not None else (baseline.reference if baseline is not None else None)
    art = open_artifact(artifact, architecture.for_artifact() if architecture is not None else None, format_name)
    if ref is None and baseline is None and not art.manifest:
        raise UsageError("has no mwconv manifest to verify against; pass --reference", path=art.path)
    if probe is None:
        probe = _probe(None, options, art)
    notes = _align(ref, art, probe)
    untracked = untracked_problems(ref.untracked_items if ref is not None else [], art)
    ctx = Context(art, ref, options, probe, ref.names if ref is not None else art.output_names(),
                  ref.outputs if ref is not None else None, untracked, baseline)
    # train-step runs last: it trains the artifact's own model in place (no second copy in memory)
    order = [name for name in CHECKS if name in options.checks and name != "train-step"]
    order += ["train-step"] if "train-step" in options.checks else []
    done = {name: CHECK_FUNCTIONS[name](ctx) for name in order}
    results = [done[name] for name in CHECKS if name in done]
    for check in results:
        if check.name in options.require and check.status == SKIPPED:
            check.status = FAIL
            check.problems.append(f"required by --require, but skipped: {check.message}")
    warnings = []
    nonfinite = next((c.details.get("nonfinite") for c in results if c.name == "partition"), None)
    if nonfinite:
        from mwconv.errors import shorten
        warnings.append(f"{len(nonfinite)} weights hold NaN or Inf values ({shorten(nonfinite, 10)}): the outputs "
                        "check counts NaN as equal to NaN; check that this is intended (--allow-nonfinite)")
    return VerifyReport(str(artifact), art.kind, ref.label if ref is not None else "the artifact's manifest", results,
                        warnings, notes)
