"""ONNX control flow whose decision is known at import time: an ``If`` whose condition folds
(a sample-rate switch, an exporter's ``if x.dim() == 4``) is replaced by the branch it takes,
its nodes converted as if they stood in the graph (they may read the outer graph's tensors)."""

import numpy as np

from mwconv.convert.onnx.common import Unsupported
from mwconv.convert.onnx.registry import onnx_op


@onnx_op("If")
def if_(g, node, a):
    if g.is_dynamic(node.input[0]) or not g.is_const(node.input[0]):
        raise Unsupported("its condition is known only at run time (a Keras graph cannot branch on a value); "
                          "mwconv inlines an If whose condition is a constant or computed from static shapes")
    cond = np.asarray(g.const(node.input[0], node)).ravel()
    if cond.size != 1:
        raise Unsupported(f"its condition has {cond.size} elements (ONNX requires one)")
    branch = a["then_branch"] if bool(cond[0]) else a["else_branch"]
    return g.inline(branch, node)
