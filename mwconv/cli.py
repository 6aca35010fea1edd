"""The ``mwconv`` command line. Thin: parses options, calls the library, maps
typed errors to exit codes. Heavy frameworks are imported inside commands."""

import json
import sys
import traceback

import click

from mwconv import __version__
from mwconv.errors import EXIT_CODES, MwconvError

EXIT_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


class _Group(click.Group):
    """Maps expected failures to one-line messages and exit codes."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MwconvError as e:
            _fail(ctx, e, e.exit_code)
        except KeyboardInterrupt:
            click.echo("mwconv: interrupted", err=True)
            sys.exit(130)


def _opts(ctx):
    obj = ctx.find_root().obj or {}
    return obj


def _fail(ctx, err, code):
    opts = _opts(ctx)
    if opts.get("verbose"):
        traceback.print_exc()
    if opts.get("json"):
        click.echo(json.dumps({"ok": False, "exit_code": code, "error": str(err),
                               "file": getattr(err, "path", None), "tensor": getattr(err, "tensor", None)}))
    click.echo(f"mwconv: error: {err}", err=True)
    sys.exit(code)


def _common(fn):
    """--json and -v on every command (also accepted before the command)."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")(fn)
    fn = click.option("-v", "--verbose", is_flag=True, help="More detail; framework logs and tracebacks.")(fn)
    return fn


def _setup(ctx, as_json, verbose):
    opts = ctx.find_root().obj
    opts["json"] = opts.get("json") or as_json
    opts["verbose"] = opts.get("verbose") or verbose
    from mwconv import _quiet
    _quiet.VERBOSE = opts["verbose"]
    _quiet.quiet_tensorflow()
    return opts


@click.group(cls=_Group, epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mwconv")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="More detail; framework logs and tracebacks.")
@click.pass_context
def main(ctx, as_json, verbose):
    """Bring pretrained weights (HDF5, NumPy, ONNX) into Keras 3 models with
    frozen and trainable parts, export them, and prove the export kept the
    frozen/trainable partition and the numbers.

    \b
    Examples:
      mwconv fixtures samples/
      mwconv inspect samples/tfkeras2_full.h5 --hash
      mwconv --json inspect samples/keras3_model.keras
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

    SOURCE is an HDF5 file (.h5, .weights.h5), .npy, .npz, .onnx, .keras, or
    a SavedModel directory.

    \b
    Examples:
      mwconv inspect weights.h5
      mwconv inspect model.onnx --hash --json
      mwconv inspect serving/          # a SavedModel directory
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


if __name__ == "__main__":  # pragma: no cover
    main()
