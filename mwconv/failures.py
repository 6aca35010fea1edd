"""What an exception that is no MwconvError becomes on the command line: one line and an
exit code, never a traceback. Running out of memory names how much was asked for and whose
fault it is (exit 3 when the input asks for more than this machine has at all, 4 when the
machine is short); anything else is reported as a bug in mwconv (exit 1).

>>> err = as_failure(MemoryError("Unable to allocate 8.00 GiB for an array with shape "
...                              "(2147483648, 1) and data type float32"), memory=16 << 30)
>>> err.exit_code, str(err)      # doctest: +ELLIPSIS
(4, 'out of memory: 8.0 GiB asked for at once (a float32 tensor of shape (2147483648, 1)), ...')
"""

import os
import re

import numpy as np

from mwconv.errors import InputRejected, MwconvError, OutputRefused

_NUMPY = re.compile(r"allocate [\d.]+ \w+ for an array with shape \(([\d, ]*)\) and data type (\w+)")
_TF = re.compile(r"OOM when allocating tensor with shape\[([\d,]*)\] and type (\w+)")
_TF_TYPES = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16", "int32": "int32",
             "int64": "int64", "int8": "int8", "uint8": "uint8", "bool": "bool"}


def machine_memory():
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n):
    return f"{n / (1 << 30):.1f} GiB"


def _asked(error):
    """``(bytes, dtype, shape)`` of the allocation an out-of-memory error reports, or None."""
    text = str(error)
    for pattern, numpy_style in ((_NUMPY, True), (_TF, False)):
        m = pattern.search(text)
        if m:
            shape = tuple(int(d) for d in re.split(r"[, ]+", m.group(1).strip(", ")) if d)
            dtype = m.group(2) if numpy_style else _TF_TYPES.get(m.group(2), m.group(2))
            try:
                itemsize = np.dtype(dtype).itemsize
            except TypeError:
                itemsize = 4
            return int(np.prod(shape, dtype=object) or 0) * itemsize, dtype, shape
    return None


def is_out_of_memory(error):
    return isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError"


def memory_failure(error, memory=None):
    memory = machine_memory() if memory is None else memory
    asked = _asked(error)
    what = f"{_gib(asked[0])} asked for at once (a {asked[1]} tensor of shape {asked[2]})" if asked else \
        "an allocation failed"
    if asked and memory and asked[0] > memory:
        return InputRejected(f"out of memory: {what}, more than this machine's {_gib(memory)} in all: the input "
                             "declares a tensor no machine like this one can hold (a corrupt or hostile file?)")
    have = f" ({_gib(memory)} in all)" if memory else ""
    return OutputRefused(f"out of memory: {what}, more than this machine has free{have}; close other programs, "
                         "or run on a machine with more memory")


def as_failure(error, memory=None):
    """The MwconvError that ``error`` (no MwconvError itself) is reported as."""
    if isinstance(error, RecursionError):
        return InputRejected("the model's graph is too deep for Keras to rebuild or save (Python's recursion "
                             "limit): more chained layers than mwconv handles")
    if is_out_of_memory(error):
        return memory_failure(error, memory)
    first = (str(error).splitlines() or [""])[0]
    first = first if len(first) <= 300 else first[:297] + "..."
    err = MwconvError(f"unexpected {type(error).__name__}{': ' + first if first else ''} (a bug in mwconv: run "
                      "again with -v for the traceback, and please report it)")
    return err
