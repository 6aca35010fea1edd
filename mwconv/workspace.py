"""Defaults that make ``mwconv import SOURCE`` and ``mwconv export --format F``
work as written: output names from stems, and the last import of a folder
recorded in a small state file there (``.mwconv-state.json``)."""

import contextlib
import datetime
import json
import os
import tempfile

from mwconv.errors import UsageError
from mwconv.formats.names import EXPORT_SUFFIXES, stem

STATE_FILE = ".mwconv-state.json"
_MAX_STATE_BYTES = 1 << 16


def default_import_output(source, folder="."):
    """``<source stem>.keras`` in ``folder``; refuses a name that is the source itself.

    >>> default_import_output("weights/resnet.h5", "/work")
    '/work/resnet.keras'
    """
    out = os.path.join(os.path.abspath(folder), stem(source) + ".keras")
    if os.path.exists(source) and os.path.exists(out) and os.path.samefile(source, out):
        raise UsageError(f"the default output {stem(source)}.keras is the source itself; pass -o OUT.keras",
                         path=source)
    return out


def default_export_output(model, fmt, folder="."):
    """``<model stem>_<format>`` plus the format's suffix, in ``folder``.

    >>> default_export_output("model.keras", "onnx", "/work")
    '/work/model_onnx.onnx'
    """
    return os.path.join(os.path.abspath(folder), f"{stem(model)}_{fmt}{EXPORT_SUFFIXES[fmt]}")


def record_import(output, source, folder="."):
    """Remember ``output`` as this folder's last import (best effort: a read-only folder keeps no state)."""
    state = {"last_import": os.path.abspath(output), "source": os.path.abspath(source),
             "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = os.path.join(folder, STATE_FILE)
    tmp = None
    try:       # a unique temporary name: concurrent imports never write through each other's
        fd, tmp = tempfile.mkstemp(prefix=STATE_FILE + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf8") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        return None
    return path


def last_import(folder="."):
    """The .keras written by the last ``mwconv import`` in ``folder``; UsageError when there is none."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(path):
        raise UsageError("no MODEL given and no `mwconv import` has run in this folder; pass MODEL "
                         "(a .keras file)")
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read(_MAX_STATE_BYTES + 1)[:_MAX_STATE_BYTES])
        model = state["last_import"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"the state file is unreadable ({type(e).__name__}); delete it or pass MODEL",
                         path=os.path.abspath(path)) from e
    if not isinstance(model, str) or not os.path.exists(model):
        raise UsageError(f"the last import recorded here, {model}, no longer exists; pass MODEL",
                         path=os.path.abspath(path))
    return model
