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
    return inline(g, branch, node)


def inline(g, branch, node):
    """Convert the nodes of ``branch`` in place of ``node``; its outputs become the node's."""
    from onnx import numpy_helper
    for init in branch.initializer:
        g.src.add_derived(init.name, numpy_helper.to_array(init))
        g.constants.add(init.name)
        g.attribute_constants.add(init.name)
    for inner in branch.node:
        try:
            g.convert_node(inner)
        except Unsupported as e:
            raise Unsupported(f"in the branch it takes, node '{inner.name or '(unnamed)'}' ({inner.op_type}): {e}") from e
    outs = []
    for inner, name in zip(branch.output, node.output):
        if inner.name in g.constants:          # a constant branch output stays a constant
            g.src.add_derived(name, np.asarray(g.src.get_tensor(inner.name)))
            g.constants.add(name)
            g.attribute_constants.update((name, inner.name))
            outs.append(None)
        else:
            outs.append(g.tensor(inner.name, node))
    return outs
