"""ONNX nodes computed at run time: the shape arithmetic of graphs exported with dynamic
axes (``Shape`` → ``Gather`` → ``Concat`` → ``Reshape``, ``Range`` over the sequence length,
``ConstantOfShape`` of the input's shape) and the data ops that take such values
(``Reshape``/``Expand``/``Slice``/``Tile`` to a size known only at run time).

One layer per ONNX node, interpreting a fixed list of operators with ``keras.ops``: the
config holds the operator's name, its attributes and its constant inputs (small ones as
values, larger ones as the layer's frozen weights ``constant_<i>``), never code. Each input
that is a shape vector carries its *hint*: the entries known at import time, which are put
back as Python integers so that the static sizes stay static for the layers after it.
"""

import keras
import numpy as np
from keras import ops

from mwconv import _compat

register = keras.saving.register_keras_serializable(package="mwconv")

ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Mod", "Pow", "Max", "Min", "Neg", "Abs", "Sqrt", "Floor", "Ceil",
               "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "Where"}
STRUCTURAL = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity", "Reshape", "Flatten"}
OPS = ELEMENTWISE | STRUCTURAL | {"Shape", "Size", "Range", "ConstantOfShape", "Expand", "Tile", "Trilu",
                                  "ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin", "GatherElements"}
SMALL = 64            # constant inputs up to this many elements live in the config; larger ones are weights


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _cast(e, dtype):
    """A size (an int, a backend scalar or JAX's symbolic dimension) as a ``dtype`` tensor."""
    if _is_int(e):
        return ops.convert_to_tensor(np.asarray(e, dtype))
    if not hasattr(e, "dtype"):                      # jax.export's symbolic dimension
        import jax.numpy as jnp
        e = jnp.asarray(e)
    return ops.cast(e, dtype)


@register
class OnnxRuntimeOp(keras.layers.Layer):
    """One ONNX node (``op`` in ``OPS``) evaluated with ``keras.ops``.

    ``slots``: one per ONNX input, in order: ``["tensor", hint]`` (the next tensor the layer
    is called with; ``hint`` the entries of a shape vector known at import time, ``None`` for
    each one that is not, or ``None``), ``["const", value, dtype]``, ``["weight", i, shape,
    dtype]`` (the frozen weight ``constant_<i>``) or ``["absent"]``."""

    def __init__(self, op, attributes=None, slots=(), output_hint=None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if op not in OPS:
            raise ValueError(f"OnnxRuntimeOp: operator {op!r} is not one it computes")
        self.op = str(op)
        self.attributes = dict(attributes or {})
        self.slots = [list(s) for s in slots]
        self.output_hint = None if output_hint is None else [None if d is None else int(d) for d in output_hint]

    def build(self, input_shape):
        self._held = {}
        for slot in self.slots:
            if slot[0] == "weight":
                self._held[slot[1]] = self.add_weight(name=f"constant_{slot[1]}", shape=tuple(slot[2]),
                                                      dtype=slot[3], initializer="zeros", trainable=False)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "attributes": self.attributes, "slots": self.slots,
                "output_hint": self.output_hint}

    def compute_output_spec(self, inputs):
        """What Keras works out from the operators, with the sizes known at import time filled in
        (an attention reshape's ``[B, S, -1]`` keeps its static last size for the layers after it)."""
        spec = super().compute_output_spec(inputs)
        hint = self.output_hint
        if hint is None or len(spec.shape) != len(hint):
            return spec
        return keras.KerasTensor(tuple(s if s is not None else h for s, h in zip(spec.shape, hint)), dtype=spec.dtype)

    # -- inputs ------------------------------------------------------------------------
    def _arguments(self, inputs):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        args, hints = [], []
        for slot in self.slots:
            kind = slot[0]
            if kind == "tensor":
                args.append(tensors.pop(0))
                hints.append(slot[1])
            elif kind == "const":
                args.append(np.asarray(slot[1], dtype=slot[2]))
                hints.append(None)
            elif kind == "weight":
                args.append(ops.convert_to_tensor(self._held[slot[1]]))
                hints.append(None)
            else:
                args.append(None)
                hints.append(None)
        return args, hints

    @staticmethod
    def _elements(value, hint):
        """A shape vector (or scalar) as Python ints where known, scalar tensors elsewhere."""
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            return value.tolist()
        rank = len(value.shape)
        if rank == 0:
            known = hint[0] if hint else None
            return int(known) if known is not None else value
        n = value.shape[0]
        if n is None:
            raise ValueError("OnnxRuntimeOp: a shape vector of unknown length")
        hint = hint or [None] * n
        return [int(h) if h is not None else value[i] for i, h in enumerate(hint)]

    def call(self, inputs):
        args, hints = self._arguments(inputs)
        return _run(self.op, self.attributes, args, hints, self._elements)


# -- the operators ----------------------------------------------------------------------
def _tensor(v, dtype=None):
    if isinstance(v, (list, tuple)):
        v = ops.stack([_cast(e, dtype or "int64") for e in v]) if v else np.zeros((0,), dtype or "int64")
    return ops.convert_to_tensor(v) if dtype is None else ops.cast(v, dtype)


def _dtype(v):
    return v.dtype.name if isinstance(v, np.ndarray) else keras.backend.standardize_dtype(v.dtype)


def _scalar(v):
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def _shape_of(x):
    return [int(d) if isinstance(d, (int, np.integer)) else d for d in ops.shape(x)]


def _elementwise(op, a, args):
    if op == "Where":
        c, x, y = args
        return ops.where(ops.cast(c, "bool"), x, y)
    if op in ("Neg", "Abs", "Sqrt", "Floor", "Ceil", "Not"):
        x = args[0]
        return {"Neg": ops.negative, "Abs": ops.abs, "Sqrt": ops.sqrt, "Floor": ops.floor, "Ceil": ops.ceil,
                "Not": ops.logical_not}[op](x)
    if op in ("Max", "Min"):
        out = args[0]
        for other in args[1:]:
            out = (ops.maximum if op == "Max" else ops.minimum)(out, other)
        return out
    x, y = args
    dtype = _dtype(x) if isinstance(x, np.ndarray) or hasattr(x, "dtype") else None
    if op == "Add":
        return _compat.add(x, y)
    if op == "Sub":
        return ops.subtract(x, y)
    if op == "Mul":
        return ops.multiply(x, y)
    if op == "Div":
        if dtype and "int" in dtype:                       # ONNX integer division truncates toward zero
            q = ops.floor_divide(x, y)
            inexact = ops.logical_and(ops.not_equal(ops.multiply(q, y), x),
                                      ops.not_equal(ops.less(x, 0), ops.less(y, 0)))
            return ops.where(inexact, q + 1, q)
        return ops.divide(x, y)
    if op == "Mod":
        return ops.mod(x, y)
    if op == "Pow":
        return ops.power(x, y)
    return {"Equal": ops.equal, "Less": ops.less, "Greater": ops.greater, "LessOrEqual": ops.less_equal,
            "GreaterOrEqual": ops.greater_equal, "And": ops.logical_and, "Or": ops.logical_or,
            "Xor": ops.logical_xor}[op](x, y)


def _axes(a, args, index, rank):
    if "axes" in a:
        axes = a["axes"]
    elif len(args) > index and args[index] is not None:
        axes = np.asarray(args[index]).ravel().tolist()
    else:
        return None
    return sorted(int(v) + rank if int(v) < 0 else int(v) for v in axes)


def _expand_target(x, shape):
    """ONNX's two-way broadcast of ``x``'s shape and ``shape``."""
    dims = _shape_of(x)
    n = max(len(dims), len(shape))
    dims = [1] * (n - len(dims)) + dims
    shape = [1] * (n - len(shape)) + list(shape)
    target = []
    for d, s in zip(dims, shape):
        if _is_int(s) and s == 1:
            target.append(d)
        elif _is_int(d) and d == 1:
            target.append(s)
        elif _is_int(d):
            target.append(d)
        elif _is_int(s):
            target.append(s)
        else:
            target.append(ops.maximum(ops.cast(d, "int64"), ops.cast(s, "int64")))
    return target


def _slice(x, starts, ends, axes, steps):
    rank = len(x.shape)
    axes = list(range(len(starts))) if axes is None else [int(v) + rank if int(v) < 0 else int(v) for v in axes]
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * rank
    big = 1 << 62
    for s, e, ax, st in zip(starts, ends, axes, steps):
        s = None if _is_int(s) and (s >= big or (s <= -big and int(st) > 0)) else s
        e = None if _is_int(e) and (e >= big or e <= -big) else e
        index[ax] = slice(s, e, int(st))
    return x[tuple(index)]


def _run(op, a, args, hints, elements):
    if op in ELEMENTWISE:
        return _elementwise(op, a, [_tensor(v) if isinstance(v, np.ndarray) else v for v in args])
    x = args[0]
    if isinstance(x, np.ndarray) and op not in ("ConstantOfShape", "Range"):
        x = ops.convert_to_tensor(x)
    if op == "Shape":
        dims = _shape_of(x)[int(a.get("start", 0)):a.get("end")]
        return _tensor(dims, "int64")
    if op == "Size":
        return ops.cast(ops.prod(_tensor(_shape_of(x), "int64")), "int64")
    if op == "Identity":
        return x
    if op == "Cast":
        return ops.cast(x, a["to"])
    if op == "Gather":
        indices = _tensor(args[1], "int64")
        ax = int(a.get("axis", 0))
        ax = ax + len(x.shape) if ax < 0 else ax
        size = ops.cast(ops.shape(x)[ax], "int64")
        indices = ops.where(ops.less(indices, 0), indices + size, indices)
        return ops.take(x, indices, axis=ax)
    if op == "GatherElements":
        indices = _tensor(args[1], "int64")
        ax = int(a.get("axis", 0))
        ax = ax + len(x.shape) if ax < 0 else ax
        size = ops.cast(ops.shape(x)[ax], "int64")
        indices = ops.where(ops.less(indices, 0), indices + size, indices)
        return ops.take_along_axis(x, indices, axis=ax)
    if op == "Unsqueeze":
        raw = a["axes"] if "axes" in a else np.asarray(args[1]).ravel().tolist()
        axes = sorted(int(v) + len(x.shape) + len(raw) if int(v) < 0 else int(v) for v in raw)
        for ax in axes:
            x = ops.expand_dims(x, ax)
        return x
    if op == "Squeeze":
        axes = _axes(a, args, 1, len(x.shape))
        if axes is None:
            axes = [i for i, d in enumerate(x.shape) if d == 1]
        for ax in reversed(axes):
            x = ops.squeeze(x, axis=ax)
        return x
    if op == "Concat":
        parts = [_tensor(v) for v in args if v is not None]
        dtype = _dtype(parts[0])
        return ops.concatenate([ops.cast(p, dtype) for p in parts], axis=int(a["axis"]))
    if op == "Flatten":
        ax = int(a.get("axis", 1))
        dims = _shape_of(x)
        ax = ax + len(dims) if ax < 0 else ax
        lead = 1
        for d in dims[:ax]:
            lead = lead * d
        return ops.reshape(x, [lead, -1])
    return _run_sized(op, a, x, args, hints, elements)


def _run_sized(op, a, x, args, hints, elements):
    """The operators that take sizes (a shape, slice bounds, a count) as inputs."""
    if op == "Slice":
        starts = elements(args[1], hints[1])
        ends = elements(args[2], hints[2])
        axes = elements(args[3], hints[3]) if len(args) > 3 else None
        steps = elements(args[4], hints[4]) if len(args) > 4 else None
        if "starts" in a:                                          # opset 1-9: attributes
            starts, ends, axes = a["starts"], a["ends"], a.get("axes")
        return _slice(x, starts, ends, axes, steps)
    if op == "Reshape":
        shape = elements(args[1], hints[1])
        if not int(a.get("allowzero", 0)):
            dims = _shape_of(x)
            shape = [dims[i] if _is_int(s) and s == 0 else s for i, s in enumerate(shape)]
        return ops.reshape(x, shape)
    if op == "Expand":
        return ops.broadcast_to(x, _expand_target(x, elements(args[1], hints[1])))
    if op == "Tile":
        return ops.tile(x, elements(args[1], hints[1]))
    if op == "ConstantOfShape":
        value, dtype = a.get("value", [[0.0], "float32"])
        return ops.full(elements(x, hints[0]), np.asarray(value, dtype).ravel()[0], dtype=dtype)
    if op == "Range":
        start, limit, delta = (_scalar(elements(v, h)) for v, h in zip(args[:3], hints[:3]))
        dtype = _dtype(args[0])
        return ops.cast(ops.arange(start, limit, delta), dtype)
    if op == "Trilu":
        k = int(np.asarray(args[1]).ravel()[0]) if len(args) > 1 and args[1] is not None else 0
        return ops.triu(x, k) if int(a.get("upper", 1)) else ops.tril(x, k)
    if op.startswith("Reduce"):
        axes = _axes(a, args, 1, len(x.shape))
        if axes is None and int(a.get("noop_with_empty_axes", 0)):
            return x
        fn = {"ReduceProd": ops.prod, "ReduceSum": ops.sum, "ReduceMax": ops.max, "ReduceMin": ops.min}[op]
        return fn(x, axis=None if axes is None else tuple(axes), keepdims=bool(int(a.get("keepdims", 1))))
    raise ValueError(f"OnnxRuntimeOp: operator {op!r} is not one it computes")
