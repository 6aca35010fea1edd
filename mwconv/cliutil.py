"""What every ``mwconv`` command shares: the group that maps typed errors to one-line
messages and exit codes, --json and -v on every command, and the informational lines."""

import json
import sys
import traceback

import click

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
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - the last resort: no traceback reaches the user, for any input
            from mwconv.failures import as_failure
            failure = as_failure(e)
            _fail(ctx, failure, failure.exit_code)


def _opts(ctx):
    return ctx.find_root().obj or {}


def _fail(ctx, err, code):
    opts = _opts(ctx)
    if opts.get("verbose"):
        traceback.print_exc()
    if opts.get("json"):
        doc = {"ok": False, "exit_code": code, "error": str(err),
               "file": getattr(err, "path", None), "tensor": getattr(err, "tensor", None)}
        if getattr(err, "details", None) is not None:
            doc["details"] = err.details
        click.echo(json.dumps(doc, default=str))
    click.echo(f"mwconv: error: {err}", err=True)
    sys.exit(code)


def _common(fn):
    """--json and -v on every command (also accepted before the command)."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")(fn)
    return click.option("-v", "--verbose", is_flag=True, help="More detail; framework logs and tracebacks.")(fn)


def _setup(ctx, as_json, verbose):
    opts = ctx.find_root().obj
    opts["json"] = opts.get("json") or as_json
    opts["verbose"] = opts.get("verbose") or verbose
    from mwconv import _quiet, progress
    _quiet.VERBOSE = opts["verbose"]
    _quiet.quiet_tensorflow()
    progress.ENABLED = not opts["json"] and sys.stderr.isatty()
    return opts


def _say(opts, text):
    """One informational line on stderr (none under --json)."""
    if not opts["json"]:
        click.echo(f"mwconv: {text}", err=True)


def _progress(opts):
    if opts["json"] or opts.get("quiet"):
        return None
    return lambda text: click.echo(f"mwconv: {text}", err=True)
