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
from mwconv.verification.devices import check_devices, device_check, tf32_disabled, tf32_mode
from mwconv.verification.partition import (
    check_partition, entries_from_manifest, entries_from_model, pair_paths, untracked_problems,
)
from mwconv.verification.report import CHECKS, FAIL, SKIPPED, Check, VerifyReport

__all__ = ["CHECK_FUNCTIONS", "Context", "device_check", "pair_paths", "tf32_disabled", "tf32_mode", "verify"]


def _reference(reference):
    if reference is None:
        return None, "the artifact's manifest"
    keras = modelio.keras_api()
    if isinstance(reference, keras.Model):
        return reference, f"in-memory model '{reference.name}'"
    path = os.fspath(reference)
    from mwconv.formats import open_source
    with open_source(path) as src:
        if src.architecture_kind == "keras":
            return src.architecture(), path
    raise UsageError("--reference must be a .keras file, a Keras full-model .h5 or a Keras model object "
                     "(other sources go to --source)", path=path)


def _probe(ref_model, art, options):
    """Probe inputs keyed by the reference's input names and, where they differ, the artifact's too."""
    specs = modelio.input_specs(ref_model) if ref_model is not None else art.input_specs()
    if options.inputs is not None:
        probe = probes.load_inputs(options.inputs, specs)
    else:
        vocab = probes.vocabulary(ref_model) if ref_model is not None else None
        probe = probes.random_inputs(specs, options.samples, options.seed, vocab)
    notes = []
    if ref_model is not None:
        aliases = modelio.align_inputs(specs, art.input_specs())
        for art_name, ref_name in aliases.items():
            probe[art_name] = probe[ref_name]
        if aliases:
            notes.append("inputs matched by position (names differ): " + ", ".join(
                f"reference '{r}' = artifact '{a}'" for a, r in aliases.items()))
    return probe, notes


@dataclasses.dataclass
class Context:
    """Everything a check needs: the artifact, the reference, the probe and the options."""

    art: object
    ref: object                 # Keras model, or None (the manifest is the reference)
    options: VerifyOptions
    probe: dict
    names: list                 # output names
    outputs: list               # the reference's outputs on the probe, or None
    untracked: list             # problems: variables Keras does not track

    @property
    def prefixes(self):
        names = [m.name for m in (self.ref, self.art.loaded_model()) if m is not None]
        return tuple(dict.fromkeys(f"{n}/" for n in names))


def _partition(ctx):
    reference = entries_from_model(ctx.ref) if ctx.ref is not None else entries_from_manifest(ctx.art.manifest)
    return check_partition(ctx.art, reference, ctx.untracked, ctx.prefixes)


def _outputs(ctx):
    if ctx.outputs is None:
        return Check("outputs", SKIPPED, "no reference model to compare with (pass --reference)")
    hints = ["likely cause: " + u for u in ctx.untracked]
    return check_outputs(ctx.art, ctx.outputs, ctx.names, ctx.probe, ctx.options.atol, ctx.options.rtol, hints)


def _train_step(ctx):
    return check_train_step(ctx.art, ctx.probe, ctx.outputs if ctx.outputs is not None else ctx.art.run(ctx.probe))


def _devices(ctx):
    return check_devices(ctx.art, ctx.probe, ctx.names, ctx.options.devices, ctx.options.atol, ctx.options.rtol)


def _source(ctx):
    return check_source(ctx.art, ctx.options.source, ctx.probe, ctx.names, ctx.options.atol, ctx.options.rtol)


CHECK_FUNCTIONS = {"partition": _partition, "outputs": _outputs, "train-step": _train_step, "devices": _devices,
                   "source": _source}


def verify(artifact, reference=None, *, options=None, format_name=None, **fields):
    """Run the checks on ``artifact``; return a VerifyReport (truthy when nothing failed).

    ``reference``: a .keras path, Keras full-model .h5, or Keras model
    (functional or Sequential; inputs whose names differ from the artifact's
    are matched by position, and the report says so); None uses the
    artifact's manifest. ``options`` is a VerifyOptions, else one is built from
    ``fields``: ``inputs`` (.npz of probe inputs by name), ``samples``, ``seed``,
    ``atol``, ``rtol``, ``checks`` (subset of partition, outputs, train-step,
    devices, source), ``require`` (checks whose skip is a failure, e.g. "gpu"),
    ``devices``, ``source``. ``format_name`` when the caller knows the format.

    >>> report = verify("model.keras", reference=model)   # doctest: +SKIP
    >>> report.ok, report.notes
    (True, ["inputs matched by position (names differ): reference 'input_layer_3' = artifact 'input_layer'"])
    """
    options = options or VerifyOptions(reference=reference, **fields)
    ref_model, ref_label = _reference(options.reference if options.reference is not None else reference)
    art = open_artifact(artifact, ref_model, format_name)
    if ref_model is None and not art.manifest:
        raise UsageError("has no mwconv manifest to verify against; pass --reference", path=art.path)
    probe, notes = _probe(ref_model, art, options)
    ctx = Context(art, ref_model, options, probe,
                  modelio.output_names(ref_model) if ref_model is not None else art.output_names(),
                  modelio.call_model(ref_model, probe) if ref_model is not None else None,
                  untracked_problems(ref_model, art))
    results = [CHECK_FUNCTIONS[name](ctx) for name in CHECKS if name in options.checks]
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
    return VerifyReport(str(artifact), art.kind, ref_label, results, warnings, notes)
