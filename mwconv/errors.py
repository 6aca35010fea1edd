"""Typed errors. Each carries the process exit code the CLI maps it to.

The library raises these; only ``mwconv.cli`` turns them into exit codes.
Messages are one line and name the file, the tensor and the fix.
"""


import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text):
    """``text`` with control characters (newlines, terminal escapes) shown as ``\\xNN``, so a
    file or tensor name can never break a one-line message or forge another line.

    >>> printable("a\\nmwconv: ok\\x1b[2J")
    'a\\\\x0amwconv: ok\\\\x1b[2J'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def shorten(names, limit=20):
    """``a, b, c`` or, past ``limit`` names, ``a, b, ... and 99,998 more``.

    >>> shorten([f"n{i}" for i in range(100000)], limit=2)
    'n0, n1, ... and 99,998 more'
    """
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... and {len(names) - limit:,} more"


def inner_reason(error, limit=300):
    """The reason a framework error gives, on one line: the innermost cause, and past
    Keras's ``Error when deserializing ... Exception encountered:`` wrapper; over ``limit``
    characters, the middle gives way to ``...`` so the end (the reason) stays.

    >>> inner_reason(ValueError("Error when deserializing class 'LSTM' using config={'units': 4}.\\n\\n"
    ...                         "Exception encountered: Unrecognized keyword arguments: {'time_major': False}"))
    "Unrecognized keyword arguments: {'time_major': False}"
    """
    while error.__cause__ is not None and str(error.__cause__):
        error = error.__cause__
    text = str(error) or type(error).__name__
    marker = "Exception encountered:"
    if marker in text:
        text = text.rsplit(marker, 1)[1]
    text = " ".join(text.split())
    if len(text) > limit:
        keep = (limit - 5) // 2
        text = f"{text[:keep]} ... {text[-keep:]}"
    return text


def os_reason(error):
    """The words for an OSError met opening an input, the same in every command and for every
    kind of file (None for other errors): "no such file or directory", "permission denied", ...

    >>> os_reason(FileNotFoundError(2, "No such file or directory"))
    'no such file or directory'
    """
    for cls, words in ((FileNotFoundError, "no such file or directory"), (PermissionError, "permission denied"),
                       (IsADirectoryError, "is a folder, not a file"),
                       (NotADirectoryError, "a part of the path is not a folder")):
        if isinstance(error, cls):
            return words
    return None


class MwconvError(Exception):
    """Base class of every expected failure."""

    exit_code = 1

    def __init__(self, message, *, path=None, tensor=None, details=None):
        self.path = None if path is None else str(path)
        self.tensor = tensor
        self.details = details
        self.reason = printable(message)
        prefix = ""
        if self.path is not None:
            prefix = f"{self.path}: "
        if tensor is not None:
            prefix += f"tensor '{tensor}': "
        super().__init__(printable(prefix + message))


class VerificationFailed(MwconvError):
    """The artifact was written but a check says it is wrong (exit 1)."""

    exit_code = 1


class UsageError(MwconvError):
    """The command line or a config file is wrong (exit 2)."""

    exit_code = 2


class InputRejected(MwconvError):
    """Unreadable, corrupt, unsafe input, or a mapping that does not fit (exit 3)."""

    exit_code = 3


class OutputRefused(MwconvError):
    """The output exists without --force, is not writable, or no space (exit 4)."""

    exit_code = 4


EXIT_CODES = {
    0: "success",
    1: "verification failed (the artifact was written, the checks say it is wrong)",
    2: "usage error",
    3: "input rejected (unreadable, corrupt, unsafe, or the mapping does not fit)",
    4: "output refused (exists without --force, not writable, no space)",
    130: "interrupted (Ctrl-C); nothing written, temporary files removed",
    143: "terminated (SIGTERM); likewise",
}
