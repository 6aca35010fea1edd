"""Values known only at run time, in graphs exported with dynamic axes beyond the batch.

``Shape`` of a tensor whose sizes are not all static, and what the graph computes from it
(``Gather``, ``Concat``, ``Range``, ``ConstantOfShape``, ...), cannot be folded to constants.
The builder still evaluates them once, with every unknown size set to ``SENTINEL``, and
tracks which entries depend on an unknown size (their *taint*): untainted entries are exact
whatever the sizes, so they stay static for the layers after them (a Reshape target
``[B, S, 2, 8]`` keeps its 2 and 8). A value is built as Keras layers only when a node
takes it as a tensor, one ``OnnxRuntimeOp`` per ONNX node, computed with ``keras.ops``."""

import numpy as np

from mwconv.convert.onnx.common import Unsupported
from mwconv.layers.onnx_runtime import ELEMENTWISE, OPS, SMALL, STRUCTURAL

SENTINEL = 8                 # what an unknown size is taken to be for the import-time evaluation
HINT_LIMIT = 16              # shape vectors up to this length carry their known entries as hints
RUNTIME_OPS = OPS


class DynamicInput(Unsupported):
    """A handler asked for the import-time value of a tensor known only at run time."""

    def __init__(self, name):
        super().__init__(f"its input '{name}' is known only at run time (it is computed from a dynamic size)")
        self.name = name


class Dynamic:
    """One run-time value: ``value`` at the sentinel sizes (None where it could not be
    evaluated) and ``taint`` (True where an entry depends on an unknown size; None: all)."""

    def __init__(self, value=None, taint=None):
        self.value = None if value is None else np.asarray(value)
        self.taint = None if taint is None or self.value is None else np.asarray(taint, dtype=bool)

    def hint(self):
        """The entries known at import time of a short integer vector (None for the others)."""
        v = self.value
        if v is None or v.ndim > 1 or v.size > HINT_LIMIT or not np.issubdtype(v.dtype, np.integer):
            return None
        taint = self.taint if self.taint is not None else np.ones(v.shape, bool)
        return [None if t else int(x) for x, t in zip(v.ravel().tolist(), taint.ravel().tolist())]


def shape_taint(dims, node, a):
    """Value and taint of ``Shape``/``Size`` of a tensor with static sizes ``dims`` (None unknown)."""
    shape = np.asarray([SENTINEL if d is None else d for d in dims], dtype=np.int64)
    unknown = np.asarray([d is None for d in dims], dtype=bool)
    if node.op_type == "Size":
        return np.asarray(np.prod(shape), dtype=np.int64), np.asarray(unknown.any())
    end = a.get("end")
    cut = slice(int(a.get("start", 0)), None if end is None else int(end))
    return shape[cut], unknown[cut]


DATA_INPUTS = {"Gather": (0,), "Unsqueeze": (0,), "Squeeze": (0,), "Slice": (0,), "Cast": (0,), "Identity": (0,),
               "Reshape": (0,), "Flatten": (0,)}


def propagate(folder, node, values, taints):
    """The outputs' taints, given each input's (None: not a run-time value; True: all)."""
    op = node.op_type
    shapes = [None if v is None else np.shape(v) for v in values]
    full = [np.ones(np.shape(v), bool) if v is not None else None for v in values]
    mask = [full[i] if t is True else t for i, t in enumerate(taints)]
    if op in ELEMENTWISE:
        present = [m if m is not None else np.zeros(s, bool) for m, s in zip(mask, shapes) if s is not None]
        return [np.logical_or.reduce(np.broadcast_arrays(*present)) if len(present) > 1 else present[0]]
    if op in STRUCTURAL:
        data = DATA_INPUTS.get(op, tuple(range(len(values))))
        if any(taints[i] is not None for i in range(len(values)) if i not in data and values[i] is not None):
            return None                                  # an index or a shape depends on a size: all of it does
        probe = [np.where(mask[i], 1, 0).astype(np.int64) if i in data and mask[i] is not None else
                 (np.zeros(shapes[i], np.int64) if i in data and values[i] is not None else values[i])
                 for i in range(len(values))]
        if op == "Cast":
            return [np.asarray(mask[0])]
        try:
            out = folder.run(node, probe)
        except Unsupported:
            return None
        return [np.asarray(o) != 0 for o in out]
    return None


def node_slots(g, node):
    """The ``OnnxRuntimeOp`` slots of ``node`` and the tensors it is called with."""
    out, tensors, weights = [], [], []
    for name in node.input:
        if not name:
            out.append(["absent"])
        elif name in g.dynamic:
            tensors.append(g.materialize(name, node))
            out.append(["tensor", g.dynamic[name].hint()])
        elif name in g.tensors:
            tensors.append(g.tensors[name])
            out.append(["tensor", None])
        elif name in g.constants:
            value = np.asarray(g.src.get_tensor(name))
            g.attribute_constants.add(name)
            if value.size <= SMALL:
                out.append(["const", value.tolist(), value.dtype.name])
            else:
                out.append(["weight", len(weights), list(value.shape), value.dtype.name])
                weights.append(name)
        else:
            g.tensor(name, node)             # raises: nothing produces it
    return out, tensors, weights


def attributes(node):
    """The node's attributes as JSON values (a tensor attribute as ``[values, dtype]``)."""
    from onnx import AttributeProto, helper, numpy_helper
    result = {}
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            value = numpy_helper.to_array(attr.t)
            result[attr.name] = [value.ravel().tolist(), value.dtype.name]
        elif attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS, AttributeProto.SPARSE_TENSOR):
            raise Unsupported(f"attribute '{attr.name}' holds a graph or sparse tensor")
        else:
            value = helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, list):
                value = [v.decode() if isinstance(v, bytes) else v for v in value]
            result[attr.name] = value
    if node.op_type == "Cast":
        result["to"] = np.dtype(helper.tensor_dtype_to_np_dtype(int(result["to"]))).name
    return result


def output_hint(g, node):
    """The static sizes of a run-time node's output: ONNX's shape inference, and for a Reshape
    the entries of its target known at import time, with its -1 resolved where the unknown
    sizes of the input pair up one to one with the unknown entries of the target (each an
    unknown size, as in an attention block's ``[B, S, -1]``)."""
    inferred = list(g.shapes.get(node.output[0]) or [])
    if node.op_type != "Reshape" or node.input[1] not in g.dynamic or node.input[0] not in g.tensors:
        return inferred or None
    target, at = g.dynamic[node.input[1]].hint(), g.dynamic[node.input[1]].value
    dims = list(g.tensors[node.input[0]].shape)
    if target is None:
        return inferred or None
    if not int(attributes(node).get("allowzero", 0)):
        target = [dims[i] if t == 0 and i < len(dims) else t for i, t in enumerate(target)]
    if target.count(-1) == 1:
        unknown = [int(v) for v, t in zip(at.ravel().tolist(), target) if t is None]
        known = [d for d in dims if d is not None]
        rest = [t for t in target if t not in (None, -1)]
        total, part = int(np.prod(known, dtype=np.int64)), int(np.prod(rest, dtype=np.int64))
        if (len(unknown) == dims.count(None) and all(u == SENTINEL for u in unknown) and part
                and total % part == 0):
            target[target.index(-1)] = total // part
    target = [None if t in (None, -1) else t for t in target]
    if inferred and len(inferred) == len(target):
        target = [t if t is not None else i for t, i in zip(target, inferred)]
    return target


class RunTimeValues:
    """What ``GraphBuilder`` does with run-time values (its ``dynamic`` and ``producer``)."""

    def is_dynamic(self, name):
        return name in self.dynamic

    def dynamic_hint(self, name):
        """The entries of a run-time shape vector known at import time (None for the others)."""
        return self.dynamic[name].hint()

    def materialize(self, name, consumer):
        """The Keras tensor of a run-time value: its node, and those it reads, as layers."""
        if name not in self.tensors:
            self._runtime_node(self.producer[name])
        return self.tensors[name]

    def _runtime_node(self, node):
        from mwconv.layers.onnx_runtime import OnnxRuntimeOp
        slots, tensors, weights = node_slots(self, node)
        if not tensors:
            raise Unsupported("it has no graph tensor input to compute from at run time")
        layer = OnnxRuntimeOp(op=node.op_type, attributes=attributes(node), slots=slots,
                              output_hint=output_hint(self, node), name=self.name(node))
        out = layer(tensors)
        for i, source in enumerate(weights):
            self.weight(layer, f"constant_{i}", source)
        self.tensors[node.output[0]] = out
        return out

    def _has_dynamic_axes(self):
        """True when a graph input has an unknown size beyond its first axis (a sequence, a width)."""
        return any(None in (self.shapes.get(vi.name) or ())[1:] for vi in self.graph.input
                   if vi.name not in self.constants)

    def _fold_dynamic(self, node):
        """Evaluate a node that reads run-time values at the sentinel sizes, and its taint."""
        values, taints = [], []
        for i in node.input:
            if not i:
                values.append(None)
                taints.append(None)
            elif i in self.dynamic:
                d = self.dynamic[i]
                values.append(d.value)
                taints.append(True if d.taint is None else d.taint)
            else:
                values.append(np.asarray(self.src.get_tensor(i)))
                taints.append(None)
                self.attribute_constants.add(i)
        results = taint = None
        if all(v is not None for v, i in zip(values, node.input) if i):
            try:
                results = self.folder.run(node, values)
                taint = propagate(self.folder, node, values, taints)
            except Unsupported:
                results = None
        results = results or [None] * len(node.output)
        self._store_dynamic(node, results, taint or [None] * len(node.output))

    def _store_dynamic(self, node, values, taints):
        for name, value, taint in zip(node.output, values, taints):
            if not name:
                continue
            if value is not None and taint is not None and not np.asarray(taint).any():
                self._store(node, [value])          # the operators computed at run time have one output
                continue                  # a static entry of a run-time shape: a constant after all
            self.dynamic[name] = Dynamic(value, taint)
            self.producer[name] = node
