"""The command line's process: signals and a private temporary folder.

On SIGINT or SIGTERM the handler itself cleans up and leaves: it removes the
staging folders that ``outputs.atomic_output`` registered and this run's private
temporary folder, prints one line and exits 130 or 143 with ``os._exit``. It
raises nothing into library code: TensorFlow can swallow an exception raised
inside its callbacks, or crash when one unwinds through it. A signal during the
final rename of an output (``critical()``) waits until the rename is done, so a
previous artifact is never lost half-way. Each run puts its temporary files
(Keras's own included) in the private folder; folders of runs that were killed
with SIGKILL are swept by the next run.
"""

import contextlib
import os
import shutil
import signal
import tempfile

PREFIX = "mwconv-run-"


_staging = set()        # staging folders of outputs being written
_state = {"critical": 0, "pending": None, "private": None}


def register_staging(folder):
    _staging.add(folder)


def unregister_staging(folder):
    _staging.discard(folder)


@contextlib.contextmanager
def critical():
    """A section a signal must not cut (the final rename of an output): the exit waits for its end."""
    _state["critical"] += 1
    try:
        yield
    finally:
        _state["critical"] -= 1
        if not _state["critical"] and _state["pending"] is not None:
            _exit_now(_state["pending"])


def _exit_now(signum):
    ignore_signals()
    for folder in list(_staging):
        shutil.rmtree(folder, ignore_errors=True)
    if _state["private"]:
        shutil.rmtree(_state["private"], ignore_errors=True)
    try:   # the stderr of the start: fd 2 may point at /dev/null while a framework is imported quietly
        os.write(_state.get("stderr", 2), f"mwconv: interrupted ({signal.Signals(signum).name})\n".encode())
    except OSError:
        pass
    os._exit(128 + signum)


def _handle(signum, frame):
    if _state["critical"]:
        _state["pending"] = signum
        return
    _exit_now(signum)


def install_signal_handlers():
    _state["stderr"] = os.dup(2)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handle)


def ignore_signals():
    """While cleaning up after an interruption, a second Ctrl-C must not cut the cleanup short."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def alive(pid):
    """Whether a process with this id exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(base=None):
    """Remove private folders of earlier runs whose process is gone (killed with SIGKILL)."""
    base = base or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not alive(pid):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def private_tempdir():
    """Create this run's temporary folder and make it the process's temp dir; return it."""
    sweep_stale()
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    _state["private"] = folder
    tempfile.tempdir = folder
    os.environ["TMPDIR"] = folder
    return folder


DEEP_GRAPHS = 50_000


def allow_deep_graphs(limit=DEEP_GRAPHS):
    """Keras walks functional graphs recursively: a chain of 2,000 layers passes Python's default
    limit of 1,000 frames. Python 3.11+ runs such recursion without growing the C stack."""
    import sys
    sys.setrecursionlimit(max(sys.getrecursionlimit(), limit))
