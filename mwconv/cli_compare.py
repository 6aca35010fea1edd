"""``mwconv compare``: which layer of an imported model parts from its source first."""

import json
import sys

import click

from mwconv.cliutil import EXIT_HELP, _common, _say, _setup


def run_compare(opts, source, model, report_html=None, force=False, **fields):
    """Compare, print (the table, or the JSON document), write the HTML report; the Comparison."""
    from mwconv.modelio import keras_api
    keras_api()                         # Keras and TensorFlow imported with their start-up chatter muted
    from mwconv.localize import compare as run
    from mwconv.localize import html

    result = run(source, model, **fields)
    if report_html:
        html.write(result, report_html, force=force)
        _say(opts, f"wrote {report_html}")
    return result


@click.command("compare", epilog=EXIT_HELP)
@click.argument("source", type=click.Path())
@click.argument("model", type=click.Path())
@click.option("--inputs", type=click.Path(), help=".npz of probe inputs by input name (input:<name> keys too).")
@click.option("--samples", default=2, show_default=True, help="Batch size of random probe inputs.")
@click.option("--seed", default=0, show_default=True, help="Seed of random probe inputs.")
@click.option("--atol", type=float, help="Absolute tolerance of every tensor (default: grounded in the source's "
              "noise floor).")
@click.option("--rtol", type=float, help="Relative tolerance of every tensor (default: likewise).")
@click.option("--report-html", type=click.Path(), help="Also write a self-contained HTML report with the "
              "per-layer error plot.")
@click.option("--force", is_flag=True, help="Replace the HTML report if it exists.")
@_common
@click.pass_context
def compare(ctx, source, model, inputs, samples, seed, atol, rtol, report_html, force, as_json, verbose):
    """Run SOURCE (an ONNX file, a tf-keras or Keras full-model .h5, or a .keras)
    and MODEL (the .keras that `mwconv import` made from it) on the same probe
    and compare every intermediate tensor they share: each ONNX node's output
    with the Keras layer built from it, each tf-keras layer's output with the
    translated layer. Prints the tensors past tolerance in graph order and
    names the first diverging layer: its op or class, its inputs' error and
    its own. Each tensor's tolerance is grounded in the source's noise floor
    (the source run again on inputs moved by 4 ulps) unless --atol/--rtol are
    given. Exits 1 when a tensor diverges.

    \b
    Examples:
      mwconv compare model.onnx model.keras
      mwconv compare tfkeras_model.h5 model.keras --report-html compare.html
      mwconv compare model.onnx model.keras --inputs probe.npz --json
    """
    opts = _setup(ctx, as_json, verbose)
    result = run_compare(opts, source, model, report_html, force, inputs=inputs, samples=samples, seed=seed,
                         atol=atol, rtol=rtol)
    if opts["json"]:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(result.format())
    if not result.ok:
        sys.exit(1)


def localize(report, artifact, reference, **fields):
    """For ``verify --localize``: a Comparison per failed outputs or source check, or a note
    saying why none could run. The pair compared is the source (or reference) against the
    artifact where the artifact is a .keras, else against the reference .keras."""
    from mwconv.localize import compare as run
    found = []
    for check in report.checks:
        if check.status != "fail" or check.name not in ("outputs", "source"):
            continue
        left = check.details.get("source") if check.name == "source" else reference
        right = artifact if str(artifact).endswith(".keras") else (reference if check.name == "source" else None)
        if left is None or right is None or not str(right).endswith(".keras"):
            found.append((check.name, None, f"the {report.kind} artifact's intermediate tensors are not reachable "
                                            "(compare the source with the imported .keras instead)"))
            continue
        found.append((check.name, run(left, right, **fields), None))
    return found


def print_localized(opts, found):
    """The comparisons after verify's report (text), or as a JSON list."""
    out = []
    for name, result, reason in found:
        if opts["json"]:
            out.append({"check": name, "comparison": None if result is None else result.to_dict(),
                        "reason": reason})
        else:
            click.echo(f"localize ({name} check): " + (reason if result is None else "\n" + result.format()))
    return out
