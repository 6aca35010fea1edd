"""ONNX ops that reshape, reorder, slice, pad or reduce tensors (no weights)."""

import numpy as np

from mwconv.convert.onnx.common import BIG, NeedsFixedBatch, Unsupported, axis as _axis, given, ints as _ints, text
from mwconv.convert.onnx.registry import onnx_op


@onnx_op("Identity")
def identity(g, node, a):
    return g.tensor(node.input[0], node)


@onnx_op("Dropout")
def dropout(g, node, a):
    if len(node.output) > 1 and node.output[1]:
        raise Unsupported("its mask output is used")
    return g.tensor(node.input[0], node)


@onnx_op("Flatten")
def flatten(g, node, a):
    from mwconv.layers.onnx_ops import OnnxReshape
    x = g.tensor(node.input[0], node)
    ax = int(a.get("axis", 1))
    ax = _axis(ax, len(x.shape)) if ax != len(x.shape) else ax      # axis == rank is allowed: (size, 1)
    if ax == 1:
        return g.keras.layers.Flatten(name=g.name(node))(x)
    g.batch_axis([0], node, f"flattens from axis {ax}, across the batch axis")
    dims = list(x.shape)
    if any(d is None for d in dims):
        raise Unsupported(f"axis={ax} on a tensor of shape {tuple(dims)} that is not static")
    shape = [int(np.prod(dims[:ax], dtype=np.int64)), int(np.prod(dims[ax:], dtype=np.int64))]
    return OnnxReshape(shape=shape, full=True, name=g.name(node))(x)


def _keeps_batch(dims, shape):
    """True when ``shape`` (its first entry standing for the batch) leaves the batch axis alone."""
    rest = shape[1:]
    if -1 in rest or any(d is None for d in dims[1:]):
        return True             # the unknown size absorbs the rest; the batch stays first
    return int(np.prod(rest, dtype=np.int64)) == int(np.prod(dims[1:], dtype=np.int64))


def _free_target(g, node, dims, first, second):
    """The Reshape target of a shape computed from the free batch size: the one entry that
    changes with the batch becomes -1 (an -1 it displaces is worked out from the static sizes)."""
    s1, s2 = g.sentinels
    moving = [i for i, (u, v) in enumerate(zip(first, second)) if u != v]
    per = first[moving[0]] // s1 if len(moving) == 1 else 0
    if len(moving) != 1 or per < 1 or first[moving[0]] != per * s1 or second[moving[0]] != per * s2:
        raise NeedsFixedBatch(node, f"reshapes to {first}, a shape that is not a multiple of the batch size")
    i = moving[0]
    target = list(first)
    target[i] = -1
    unknown = [j for j, t in enumerate(target) if t == -1 and j != i]
    if unknown:
        if sum(d is None for d in dims) != 1:
            raise Unsupported(f"reshapes {tuple(dims)} to {first} with two unknown sizes")
        known = int(np.prod([d for d in dims if d is not None], dtype=np.int64))
        rest = int(np.prod([t for j, t in enumerate(target) if t != -1], dtype=np.int64)) * per
        if rest == 0 or known % rest:
            raise Unsupported(f"reshapes {tuple(dims)} to {first}, which does not divide")
        target[unknown[0]] = known // rest
    return target


@onnx_op("Reshape")
def reshape(g, node, a):
    from mwconv.layers.onnx_ops import OnnxReshape
    x = g.tensor(node.input[0], node)
    dims = list(x.shape)
    pair = None if "shape" in a else g.batch_values(node.input[1])
    shape = _ints(a["shape"]) if "shape" in a else _ints(g.const(node.input[1], node, batch_ok=True).ravel())
    if not int(a.get("allowzero", 0)):
        copy = [i for i, s in enumerate(shape) if s == 0 and i < len(dims)]
        shape = [dims[i] if i in copy else s for i, s in enumerate(shape)]
        if pair:
            pair = (shape, [dims[i] if i in copy else s for i, s in enumerate(_ints(pair[1].ravel()))])
    if pair:
        return OnnxReshape(shape=_free_target(g, node, dims, *pair), full=True, name=g.name(node))(x)
    if g.fixed or g.onnx_batch is None:         # the graph's own target holds for every batch size
        if None in shape and -1 in shape:         # a copied free axis: the -1 holds what the static sizes leave
            known = int(np.prod([d for d in dims if d is not None], dtype=np.int64))
            rest = int(np.prod([t for t in shape if t not in (None, -1)], dtype=np.int64))
            if sum(d is None for d in dims) != 1 or shape.count(None) != 1 or not rest or known % rest:
                raise Unsupported(f"shape {shape} has two unknown sizes")
            shape[shape.index(-1)] = known // rest
        shape = [-1 if s is None else s for s in shape]
        if shape.count(-1) > 1:
            raise Unsupported(f"shape {shape} has two unknown sizes")
        return OnnxReshape(shape=shape, full=True, name=g.name(node))(x)
    first = shape[0] if shape else None
    if first not in (-1, None, g.onnx_batch) or not _keeps_batch(dims, shape):
        g.batch_axis([0], node, f"reshapes {tuple(dims)} to {shape}, across the batch axis")
    rest = [int(s) if s is not None else -1 for s in shape[1:]]
    if rest.count(-1) > 1:
        raise Unsupported(f"shape {shape} has two unknown sizes")
    if -1 in rest and all(d is not None for d in dims[1:]):       # keep the static sizes static
        known = int(np.prod([r for r in rest if r != -1], dtype=np.int64))
        if known and int(np.prod(dims[1:], dtype=np.int64)) % known == 0:
            rest[rest.index(-1)] = int(np.prod(dims[1:], dtype=np.int64)) // known
    return OnnxReshape(shape=rest, name=g.name(node))(x)


@onnx_op("Transpose")
def transpose(g, node, a):
    from mwconv.layers.onnx_ops import OnnxTranspose
    x = g.tensor(node.input[0], node)
    perm = _ints(a.get("perm", list(range(len(x.shape)))[::-1]))
    if perm and perm[0] != 0:
        g.batch_axis([0], node, f"moves the batch axis (perm {perm})")
    return OnnxTranspose(perm=perm, name=g.name(node))(x)


@onnx_op("Concat")
def concat(g, node, a):
    rank = max(g.rank(n, node) for n in node.input)
    ax = _axis(a["axis"], rank)
    g.batch_axis([ax], node, "concatenates along the batch axis")
    if any(g.is_const(n) for n in node.input):
        g.batch_axis([0], node, "concatenates a constant with a batch of tensors")
    xs = [g.operand(n, node, rank) for n in node.input]
    return g.keras.layers.Concatenate(axis=ax, name=g.name(node))(xs)


@onnx_op("Pad")
def pad(g, node, a):
    from mwconv.layers.onnx_ops import OnnxPad
    x = g.tensor(node.input[0], node)
    mode = text(a.get("mode", b"constant"))
    if mode not in ("constant", "reflect", "edge"):
        raise Unsupported(f"mode={mode} (constant, reflect and edge are supported)")
    if "pads" in a:
        pads, value = _ints(a["pads"]), float(a.get("value", 0.0))
    else:
        pads = _ints(g.const(node.input[1], node).ravel())
        value = float(g.const(node.input[2], node)) if given(node, 2) else 0.0
        if given(node, 3):
            raise Unsupported("the axes input")
    n = len(x.shape)
    widths = [(pads[i], pads[i + n]) for i in range(n)]
    if widths[0] != (0, 0) or any(b < 0 or e < 0 for b, e in widths):
        raise Unsupported(f"pads {pads} (batch-axis or negative pads)")
    return OnnxPad(pads=[list(w) for w in widths[1:]], mode=mode, value=value, name=g.name(node))(x)


def _axes(g, node, a, index):
    """Axes from the attribute (old opsets) or from input ``index`` (newer ones); None if absent."""
    if "axes" in a:
        return _ints(a["axes"])
    name = given(node, index)
    return _ints(g.const(name, node).ravel()) if name else None


@onnx_op("Squeeze", "Unsqueeze")
def squeeze(g, node, a):
    from mwconv.layers.onnx_ops import OnnxAxes
    x = g.tensor(node.input[0], node)
    axes = _axes(g, node, a, 1)
    rank = len(x.shape) + (len(axes) if node.op_type == "Unsqueeze" else 0)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
        if not g.fixed and x.shape and x.shape[0] is None:
            raise Unsupported("Squeeze without axes while the batch size is free")
    axes = sorted(_axis(v, rank) for v in axes)
    g.batch_axis(axes, node, f"{node.op_type.lower()}s the batch axis")
    return OnnxAxes(kind=node.op_type, axes=axes, name=g.name(node))(x)


def _bound(v):
    return None if abs(v) >= BIG else int(v)


@onnx_op("Slice")
def slice_(g, node, a):
    from mwconv.layers.onnx_ops import OnnxSlice
    x = g.tensor(node.input[0], node)
    rank = len(x.shape)
    if "starts" in a:                                        # opset < 10
        starts, ends = _ints(a["starts"]), _ints(a["ends"])
        axes, steps = _ints(a.get("axes", range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = (_ints(g.const(node.input[i], node).ravel()) for i in (1, 2))
        axes = _ints(g.const(node.input[3], node).ravel()) if given(node, 3) else list(range(len(starts)))
        steps = _ints(g.const(node.input[4], node).ravel()) if given(node, 4) else [1] * len(starts)
    if 0 in steps:
        raise Unsupported("a step of 0")
    slices = [[_axis(ax, rank), _bound(s), _bound(e), st] for ax, s, e, st in zip(axes, starts, ends, steps)]
    touched = [s[0] for s in slices if s[1:] not in ([0, None, 1], [None, None, 1])]
    g.batch_axis(touched, node, "slices the batch axis")
    return OnnxSlice(slices=slices, name=g.name(node))(x)


@onnx_op("Split")
def split(g, node, a):
    from mwconv.layers.onnx_ops import OnnxSplit
    x = g.tensor(node.input[0], node)
    ax = _axis(a.get("axis", 0), len(x.shape))
    g.batch_axis([ax], node, "splits the batch axis")
    if "split" in a:
        sizes = _ints(a["split"])
    elif given(node, 1):
        sizes = _ints(g.const(node.input[1], node).ravel())
    else:
        parts, dim = len(node.output), x.shape[ax]
        if dim is None:
            raise Unsupported(f"an even split of axis {ax}, whose size is not static")
        step = -(-dim // parts)
        sizes = [min(step, dim - i * step) for i in range(parts)]
    out = OnnxSplit(axis=ax, sizes=sizes, name=g.name(node))(x)
    return out if isinstance(out, (list, tuple)) else [out]


@onnx_op("Expand")
def expand(g, node, a):
    from mwconv.layers.onnx_ops import OnnxExpand
    pair = g.batch_values(node.input[1])
    shape = _ints(g.const(node.input[1], node, batch_ok=True).ravel())
    rank = max(g.rank(node.input[0], node), len(shape))
    x = g.operand(node.input[0], node, rank if pair is None else rank + 1)
    if pair:                                    # broadcast to the batch size of the graph's inputs at run time
        s1, s2 = g.sentinels
        second = _ints(pair[1].ravel())
        moving = [i for i, (u, v) in enumerate(zip(shape, second)) if u != v]
        if len(moving) != 1 or (shape[moving[0]], second[moving[0]]) != (s1, s2):
            raise Unsupported(f"expands to {shape}, which depends on the batch size other than as one axis")
        shape[moving[0]] = -1
        return OnnxExpand(shape=shape, name=g.name(node))([x, g.batch_reference()])
    if len(shape) > len(x.shape):
        g.batch_axis([0], node, f"expands {tuple(x.shape)} to {shape}, adding axes before the batch axis")
    elif shape and len(shape) == len(x.shape) and shape[0] != 1:
        g.batch_axis([0], node, f"expands the batch axis to {shape[0]}")
    if not g.fixed and g.onnx_batch is not None and len(shape) == len(x.shape):
        shape = [1] + shape[1:]
    return OnnxExpand(shape=shape, name=g.name(node))(x)


@onnx_op("Tile")
def tile(g, node, a):
    from mwconv.layers.onnx_ops import OnnxTile
    x = g.tensor(node.input[0], node)
    repeats = _ints(g.const(node.input[1], node).ravel())
    if len(repeats) != len(x.shape):
        raise Unsupported(f"repeats {repeats} for a tensor of rank {len(x.shape)}")
    if repeats and repeats[0] != 1:
        g.batch_axis([0], node, "repeats the batch axis")
    return OnnxTile(repeats=repeats, name=g.name(node))(x)


@onnx_op("Cast")
def cast(g, node, a):
    from onnx import helper

    from mwconv.layers.onnx_ops import OnnxCast
    to = np.dtype(helper.tensor_dtype_to_np_dtype(int(a["to"]))).name
    return OnnxCast(to=to, name=g.name(node))(g.tensor(node.input[0], node))


@onnx_op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
         "ReduceLogSum", "ReduceLogSumExp")
def reduce(g, node, a):
    from mwconv.layers.onnx_ops import OnnxReduce
    x = g.tensor(node.input[0], node)
    axes = _axes(g, node, a, 1)
    if axes is None or not axes:
        if int(a.get("noop_with_empty_axes", 0)):
            return x
        axes = list(range(len(x.shape)))
    axes = sorted(_axis(v, len(x.shape)) for v in axes)
    g.batch_axis(axes, node, "reduces over the batch axis")
    return OnnxReduce(kind=node.op_type, axes=axes, keepdims=int(a.get("keepdims", 1)), name=g.name(node))(x)


@onnx_op("CumSum")
def cumsum(g, node, a):
    from mwconv.layers.onnx_axis_ops import OnnxCumSum
    x = g.tensor(node.input[0], node)
    axis = _axis(int(np.asarray(g.const(node.input[1], node)).reshape(-1)[0]), len(x.shape))
    g.batch_axis([axis], node, "sums along the batch axis")
    return OnnxCumSum(axis=axis, exclusive=bool(int(a.get("exclusive", 0))), reverse=bool(int(a.get("reverse", 0))),
                      name=g.name(node))(x)


@onnx_op("GatherElements")
def gather_elements(g, node, a):
    from mwconv.layers.onnx_axis_ops import OnnxGatherElements
    data, indices = (g.operand(name, node, other_rank=g.rank(other, node))
                     for name, other in ((node.input[0], node.input[1]), (node.input[1], node.input[0])))
    axis = _axis(int(a.get("axis", 0)), len(data.shape))
    g.batch_axis([axis], node, "gathers along the batch axis")
    return OnnxGatherElements(axis=axis, name=g.name(node))([data, indices])


@onnx_op("Einsum")
def einsum(g, node, a):
    """Graph operands stay inputs, constant ones become the layer's frozen weights. The batch
    must stay the output's first axis: each graph operand's first subscript leads the output."""
    from mwconv.layers.onnx_index_ops import OnnxEinsum
    equation = text(a.get("equation", "")).replace(" ", "")
    lhs, _, out = equation.partition("->")
    terms = lhs.split(",")
    if not out or len(terms) != len(node.input):
        raise Unsupported(f"the equation '{equation}' (an implicit output, or one term per operand missing)")
    graph = [i for i, n in enumerate(node.input) if not g.is_const(n)]
    if not graph:
        raise Unsupported("constant operands only")
    keeps = all(terms[i][:1] == out[:1] and terms[i][:1] != "." for i in graph) and \
        not any(out[:1] in terms[i] for i in range(len(terms)) if i not in graph)
    if not keeps:
        g.batch_axis([0], node, f"moves or contracts the batch axis ('{equation}')")
    constants = [[i, list(g.const_info(n).shape), np.dtype(g.const_info(n).dtype).name]
                 for i, n in enumerate(node.input) if i not in graph]
    layer = OnnxEinsum(equation=equation, constants=constants, name=g.name(node))
    tensors = [g.tensor(node.input[i], node) for i in graph]
    out_t = layer(tensors if len(tensors) > 1 else tensors[0])
    for k, (i, _, _) in enumerate(constants):
        g.weight(layer, f"constant_{k}", node.input[i])
    return out_t


@onnx_op("TopK")
def top_k(g, node, a):
    from mwconv.layers.onnx_index_ops import OnnxTopK
    x = g.tensor(node.input[0], node)
    k = int(np.asarray(g.const(node.input[1], node)).reshape(-1)[0])
    axis = _axis(int(a.get("axis", -1)), len(x.shape))
    g.batch_axis([axis], node, "picks along the batch axis")
    if not int(a.get("sorted", 1)):
        raise Unsupported("sorted=0 (the order onnxruntime returns is its own)")
    return OnnxTopK(k=k, axis=axis, largest=bool(int(a.get("largest", 1))), name=g.name(node))(x)


@onnx_op("GatherND")
def gather_nd(g, node, a):
    from mwconv.layers.onnx_index_ops import OnnxGatherND
    batch_dims = int(a.get("batch_dims", 0))
    if batch_dims == 0:
        g.batch_axis([0], node, "indexes into the batch axis")
    data, indices = (g.operand(name, node, other_rank=g.rank(other, node))
                     for name, other in ((node.input[0], node.input[1]), (node.input[1], node.input[0])))
    if indices.shape[-1] is None:
        raise Unsupported("indices whose last axis (the index length) is not known")
    return OnnxGatherND(batch_dims=batch_dims, name=g.name(node))([data, indices])


@onnx_op("ScatterND")
def scatter_nd(g, node, a):
    from mwconv.layers.onnx_index_ops import OnnxScatterND
    if text(a.get("reduction", "none")) != "none":
        raise Unsupported(f"reduction='{text(a['reduction'])}'")
    g.batch_axis([0], node, "writes into the batch axis")
    operands = [g.operand(n, node, other_rank=g.rank(node.input[0], node)) for n in node.input[:3]]
    return OnnxScatterND(name=g.name(node))(operands)


@onnx_op("NonZero")
def non_zero(g, node, a):
    raise Unsupported("its output's size depends on the values, which a Keras graph cannot have (one whose input "
                      "is known at import time is folded)")
