"""The ONNX operator registry. Each op type is declared once, by the family
module that converts it::

    @onnx_op("Relu", "Sigmoid")
    def activation(g, node, a): ...

A handler gets the GraphBuilder ``g``, the node and its attributes, and returns
the Keras tensor of the node's output (a list for several outputs), or raises
``Unsupported`` saying why. Families: ``shape``, ``linear``, ``conv``,
``normalization``, ``elementwise`` (one module each, ``<family>_ops.py``).
Nodes whose inputs are all known at import time never reach a handler: they
are folded to constants (``fold.py``).
"""

import dataclasses
import importlib

FAMILIES = ("shape", "linear", "conv", "normalization", "elementwise", "control")


@dataclasses.dataclass(frozen=True)
class Handler:
    op_type: str
    fn: object
    since: int          # the first opset of the op's versions this handler reads
    family: str


OPS = {}


def onnx_op(*op_types, since=1):
    """Register ``fn`` as the converter of ``op_types``."""

    def register(fn):
        family = fn.__module__.rsplit(".", 1)[-1][:-len("_ops")]
        for op_type in op_types:
            if op_type in OPS:
                raise ValueError(f"ONNX op {op_type} is registered twice ({OPS[op_type].family}, {family})")
            OPS[op_type] = Handler(op_type, fn, since, family)
        return fn

    return register


def _load():
    for family in FAMILIES:
        importlib.import_module(f"mwconv.convert.onnx.{family}_ops")


def handler(op_type):
    """The Handler of ``op_type``, or None."""
    _load()
    return OPS.get(op_type)


def supported_ops():
    """The ONNX operator types the graph importer converts, sorted."""
    _load()
    return sorted(OPS)


def by_family():
    """``{family: [op types]}``, for the README's table."""
    _load()
    out = {f: [] for f in FAMILIES}
    for op_type, h in sorted(OPS.items()):
        out[h.family].append(op_type)
    return out


def markdown_table():
    """The README's operator table (between its ``onnx-ops`` markers)."""
    rows = ["| family | operators |", "|---|---|"]
    rows += [f"| {family} | {', '.join(ops)} |" for family, ops in by_family().items()]
    return "\n".join(rows) + "\n"
