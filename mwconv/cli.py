"""The ``mwconv`` command line. Thin: parses options, calls the library, maps
typed errors to exit codes. Heavy frameworks are imported inside commands."""

import json
import os
import sys

import click

from mwconv import __version__
from mwconv.cli_compare import compare as compare_command
from mwconv.cliutil import EXIT_HELP, _common, _Group, _progress, _say, _setup
from mwconv.formats.names import EXPORT_FORMATS
from mwconv.options import DEFAULT_OPSET, ExportOptions, ImportOptions, VerifyOptions


@click.group(cls=_Group, epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mwconv")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="More detail; framework logs and tracebacks.")
@click.pass_context
def main(ctx, as_json, verbose):
    """Bring pretrained weights (HDF5, NumPy, ONNX, safetensors) into Keras 3 models with
    frozen and trainable parts, export them, and prove the export kept the
    frozen/trainable partition and the numbers.

    \b
    Examples:
      mwconv import weights.h5                      # -> weights.keras
      mwconv export --format saved_model            # -> weights_saved_model/
      mwconv fixtures samples/
      mwconv inspect samples/tfkeras2_full.h5 --hash
      mwconv import samples/tfkeras2_full.h5 --train 'head/*' -o model.keras
      mwconv export model.keras --format saved_model -o serving/
      mwconv verify serving/ --reference model.keras
      mwconv run examples/quickstart.toml
    """
    ctx.obj = {"json": as_json, "verbose": verbose}


@main.command(epilog=EXIT_HELP)
@click.argument("source", type=click.Path())
@click.option("--hash", "with_hash", is_flag=True, help="Add the sha256 of every tensor's bytes.")
@_common
@click.pass_context
def inspect(ctx, source, with_hash, as_json, verbose):
    """List the tensors of SOURCE: name, shape, dtype, bytes (and sha256 with
    --hash), the format detected from its magic bytes, whether it carries an
    architecture, the frozen/trainable partition where it records one, and an
    embedded mwconv manifest.

    SOURCE is an HDF5 file (.h5, .weights.h5), .npy, .npz, .onnx, .keras,
    .safetensors (or a sharded checkpoint's .safetensors.index.json), or a
    SavedModel directory.

    \b
    Examples:
      mwconv inspect weights.h5
      mwconv inspect model.onnx --hash --json
      mwconv inspect serving/          # a SavedModel directory
      mwconv inspect model.safetensors.index.json   # every shard, lazily
    """
    opts = _setup(ctx, as_json, verbose)
    from mwconv.inspect import format_inspect, inspect_source

    report = inspect_source(source, with_hash=with_hash)
    if opts["json"]:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(format_inspect(report))


@main.command(epilog=EXIT_HELP)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, help="Seed of every generated tensor.")
@click.option("--force", is_flag=True, help="Replace files that already exist in DIRECTORY.")
@_common
@click.pass_context
def fixtures(ctx, directory, seed, force, as_json, verbose):
    """Write deterministic sample sources in every supported format into
    DIRECTORY, with reference inputs and outputs (<name>.io.npz) for those that
    carry an architecture. The same seed gives byte-identical tensors.

    \b
    Examples:
      mwconv fixtures samples/
      mwconv fixtures samples/ --seed 7 --force
    """
    opts = _setup(ctx, as_json, verbose)
    from mwconv.fixtures import write_fixtures

    written = write_fixtures(directory, seed=seed, force=force)
    if opts["json"]:
        click.echo(json.dumps({"ok": True, "directory": directory, "files": written}, indent=2))
    else:
        for entry in written:
            click.echo(f"{entry['path']}  ({entry['format']}, written by {entry['writer']})")
        click.echo(f"{len(written)} sample sources in {directory}")


@main.command("import", epilog=EXIT_HELP)
@click.argument("source", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="The .keras file to write. Default: "
              "<source stem>.keras in the current folder.")
@click.option("--model", "model_spec", help="Target model: a .keras file, a keras-hub preset folder or config.json, "
              "module:function or file.py:function returning a Keras model. Default: the source's own architecture.")
@click.option("--map", "rules", type=click.Path(), help="Name-mapping rules file (see README).")
@click.option("--layout", type=click.Choice(["keras", "torch", "onnx", "auto"]), default="auto", show_default=True,
              help="Tensor layout of the source: torch/onnx transpose Linear and Conv weights.")
@click.option("--freeze", multiple=True, metavar="GLOB", help="Also freeze target weights (not imported) matching GLOB.")
@click.option("--train", multiple=True, metavar="GLOB", help="Keep imported weights matching GLOB trainable.")
@click.option("--update-statistics", multiple=True, metavar="GLOB", help="Frozen BatchNormalization layers whose "
              "statistics still update in fit (default: none; a frozen one runs in inference mode).")
@click.option("--allow-missing", is_flag=True, help="Target weights without a source keep their initial values.")
@click.option("--allow-unused", is_flag=True, help="Source tensors may go unused.")
@click.option("--allow-nonfinite", is_flag=True, help="Import NaN/Inf values instead of refusing them.")
@click.option("--allow-whole-layer-freeze", is_flag=True, help="Freeze a custom layer (not a built-in Keras layer) "
              "whole where it cannot hold a frozen flag per weight (default: exit 3).")
@click.option("--channels-last", is_flag=True, help="ONNX graph import: build an NHWC model (default: the "
              "ONNX model's own NCHW layout).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@_common
@click.pass_context
def import_(ctx, source, output, model_spec, rules, layout, freeze, train, update_statistics, allow_missing,
            allow_unused, allow_nonfinite, allow_whole_layer_freeze, channels_last, force, as_json, verbose):
    """Build the target model, inject the tensors of SOURCE as frozen weights
    of mixed layers (matched by name, never by position), write OUTPUT (.keras,
    with an embedded manifest) and print the mapping report.

    Without --model the architecture comes from the source: a Keras
    full-model .h5, a .keras file, or an ONNX graph of supported operators.
    Without -o, OUTPUT is <source stem>.keras in the current folder, and the
    folder remembers it as the model `mwconv export` uses by default.

    Strict by default: a target weight with no source, a source tensor that
    goes unused, or a shape that does not fit stops the import (exit 3) with
    the full list, and nothing is written.

    \b
    Examples:
      mwconv import weights.h5                     # writes weights.keras here
      mwconv import tf2_model.h5 -o model.keras
      mwconv import model.onnx -o model.keras      # rebuilt from the ONNX graph
      mwconv import state_dict.npz --model net.py:build --layout torch --map rules.txt -o model.keras
      mwconv import weights.h5 --model net.keras --train 'head/*' --allow-missing -o model.keras
      mwconv import mobilenet.keras --train 'predictions/*' --update-statistics 'block_16_*' -o model.keras
    """
    opts = _setup(ctx, as_json, verbose)
    from mwconv import workspace
    from mwconv.convert.importer import import_weights

    if output is None:
        output = workspace.default_import_output(source)
        _say(opts, f"no -o given: writing {os.path.relpath(output)}")
    options = ImportOptions(model=model_spec, rules=rules, layout=layout, freeze=freeze, train=train,
                            update_statistics=update_statistics, allow_missing=allow_missing, allow_unused=allow_unused, allow_nonfinite=allow_nonfinite,
                            allow_whole_layer_freeze=allow_whole_layer_freeze, channels_last=channels_last,
                            output=output, force=force)
    _, report = import_weights(source, options=options)
    workspace.record_import(output, source)
    if opts["json"]:
        click.echo(json.dumps({"ok": True, "output": output, **report.to_dict()}, indent=2, default=str))
    else:
        click.echo(report.format(output))


@main.command(epilog=EXIT_HELP)
@click.argument("model", required=False, type=click.Path())
@click.option("--format", "fmt", required=True, type=click.Choice(EXPORT_FORMATS), help="Artifact format.")
@click.option("-o", "--output", type=click.Path(), help="Where to write the artifact. Default: "
              "<model stem>_<format> (plus the format's suffix) in the current folder.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--no-verify", is_flag=True, help="Skip the partition and outputs checks after writing.")
@click.option("--opset", default=DEFAULT_OPSET, show_default=True, help="ONNX opset (--format onnx).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@_common
@click.pass_context
def export(ctx, model, fmt, output, force, no_verify, opset, quiet, as_json, verbose):
    """Export MODEL (a .keras file; default: the one the last `mwconv import`
    in this folder wrote) as a TensorFlow SavedModel (serving_default
    signature, polymorphic batch, every weight stored once with its trainable
    flag), a .keras file, a Keras 3 .weights.h5, ONNX (via tf2onnx; external
    data beyond 2 GiB) or safetensors (weights by Keras path). The
    manifest travels inside every artifact. Written atomically; verified
    (partition and outputs) unless --no-verify: a failed check exits 1 and
    leaves the artifact for inspection.

    \b
    Examples:
      mwconv export --format saved_model               # the last import, to <stem>_saved_model/
      mwconv export model.keras --format saved_model -o serving/
      mwconv export model.keras --format onnx --opset 17 -o model.onnx
      mwconv export model.keras --format weights_h5 -o model.weights.h5 --force
    """
    opts = _setup(ctx, as_json, verbose)
    opts["quiet"] = quiet
    from mwconv import progress, workspace
    from mwconv.convert.exporter import export as run_export

    progress.ENABLED = progress.ENABLED and not quiet

    if model is None:
        model = workspace.last_import()
        _say(opts, f"exporting {os.path.relpath(model)} (written by the last `mwconv import` in this folder)")
    if output is None:
        output = workspace.default_export_output(model, fmt)
        _say(opts, f"no -o given: writing {os.path.relpath(output)}")

    result = run_export(model, options=ExportOptions(format=fmt, output=output, force=force, verify=not no_verify,
                                                     opset=opset, progress=_progress(opts)))
    if opts["json"]:
        click.echo(json.dumps({"ok": result.report is None or result.report.ok, **result.to_dict()}, indent=2,
                              default=str))
    else:
        click.echo(f"wrote {result.path} ({fmt}, {result.bytes} bytes = {result.bytes / max(result.weight_bytes, 1):.3f}"
                   f" x the {result.weight_bytes} weight bytes)")
        if result.report is not None:
            click.echo(result.report.format())
    if result.report is not None and not result.report.ok:
        sys.exit(1)


@main.command(epilog=EXIT_HELP)
@click.argument("artifact", type=click.Path())
@click.option("--reference", type=click.Path(), help="Reference model: .keras or Keras full-model .h5. "
              "Default: the manifest inside the artifact.")
@click.option("--inputs", type=click.Path(), help=".npz of probe inputs by input name (input:<name> keys too).")
@click.option("--samples", default=4, show_default=True, help="Batch size of random probe inputs.")
@click.option("--seed", default=0, show_default=True, help="Seed of random probe inputs.")
@click.option("--atol", type=float, help="Absolute tolerance of output comparisons (default by dtype and kind).")
@click.option("--rtol", type=float, help="Relative tolerance of output comparisons (default by dtype and kind).")
@click.option("--checks", help="Comma-separated subset: partition,outputs,train-step,devices,source,drift.")
@click.option("--require", multiple=True, help="A check whose skip is a failure (e.g. gpu). Repeatable.")
@click.option("--devices", help="Comma-separated devices for the device check (default: all visible).")
@click.option("--source", type=click.Path(), help="The original source for the source check "
              "(default: the one recorded in the manifest).")
@click.option("--baseline", type=click.Path(), help="Drift check: the imported .keras a fine-tuned ARTIFACT came from.")
@click.option("--allow-unfrozen", multiple=True, metavar="GLOB", help="Drift: weights a later stage unfroze.")
@click.option("--report", "report_file", type=click.Path(), help="Also write the JSON report to this file.")
@click.option("--localize", is_flag=True, help="When the outputs or source check fails, compare layer by layer "
              "(mwconv compare) and name the first diverging layer.")
@_common
@click.pass_context
def verify(ctx, artifact, reference, inputs, samples, seed, atol, rtol, checks, require, devices, source,
           baseline, allow_unfrozen, report_file, localize, as_json, verbose):
    """Prove that ARTIFACT (a SavedModel directory, .keras, .weights.h5, .safetensors or .onnx) kept
    the partition, the exact weight values and the outputs, that frozen weights stay frozen in a
    training step (and since --baseline), and that every device agrees. Exits 1 if any check fails.

    \b
    Checks: partition, outputs, train-step, devices, source, drift
    Statuses: pass (✓), fail (✗), skipped (–, with a reason)

    \b
    Examples:
      mwconv verify serving/ --reference model.keras
      mwconv verify model.onnx --reference model.keras --inputs probe.npz --json
      mwconv verify model.keras --require gpu --report verify.json
      mwconv verify finetuned.keras --baseline imported.keras --allow-unfrozen 'block_16_*'
    """
    opts = _setup(ctx, as_json, verbose)
    from mwconv.verification import verify as run_verify

    options = VerifyOptions(reference=reference, inputs=inputs, samples=samples, seed=seed, atol=atol, rtol=rtol,
                            checks=checks.split(",") if checks else None, require=require,
                            devices=devices.split(",") if devices else None, source=source, baseline=baseline,
                            allow_unfrozen=allow_unfrozen)
    report = run_verify(artifact, options=options)
    doc = report.to_dict()
    if localize and not report.ok:
        from mwconv.cli_compare import localize as run_localize, print_localized
        if not opts["json"]:
            click.echo(report.format())
        doc["localize"] = print_localized(opts, run_localize(report, artifact, reference, inputs=inputs, seed=seed))
    elif not opts["json"]:
        click.echo(report.format())
    if report_file:
        from mwconv.outputs import atomic_output
        with atomic_output(report_file, force=True) as tmp, open(tmp, "w", encoding="utf8") as f:
            f.write(json.dumps(doc, indent=2, default=str))
    if opts["json"]:
        click.echo(json.dumps(doc, indent=2, default=str))
    if not report.ok:
        sys.exit(1)


@main.command(epilog=EXIT_HELP)
@click.argument("pipelines", nargs=-1, required=True, type=click.Path())
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@_common
@click.pass_context
def run(ctx, pipelines, quiet, as_json, verbose):
    """Run one or more import -> export(s) -> verify pipelines described in
    TOML files (see README: "Pipeline files"), one after another. The exit
    code is the highest of theirs: 0 when every pipeline passed.

    \b
    Examples:
      mwconv run examples/quickstart.toml
      mwconv run models/*.toml --json > report.json
    """
    opts = _setup(ctx, as_json, verbose)
    opts["quiet"] = quiet
    from mwconv.pipeline import run_pipeline

    results = [run_pipeline(p, progress=_progress(opts)) for p in pipelines]
    code = max(r.exit_code for r in results)
    if opts["json"]:
        click.echo(json.dumps({"ok": code == 0, "exit_code": code, "pipelines": [r.to_dict() for r in results]},
                              indent=2, default=str))
    else:
        for r in results:
            click.echo(r.format())
        if len(results) > 1:
            click.echo(f"{sum(r.ok for r in results)} of {len(results)} pipelines passed")
    for r in results:
        if r.error:
            click.echo(f"mwconv: error: {r.error}", err=True)
    if code:
        sys.exit(code)


main.add_command(compare_command)


def entry():
    """The ``mwconv`` console command. SIGINT and SIGTERM end it cleanly (exit 130 or 143,
    temporary files removed) whatever the run was doing (see ``mwconv.runtime``)."""
    import shutil

    from mwconv import runtime

    runtime.install_signal_handlers()
    runtime.allow_deep_graphs()
    folder = runtime.private_tempdir()
    try:
        main(prog_name="mwconv")
    finally:
        runtime.ignore_signals()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    entry()
