"""ONNX elementwise ops: activations, unary math, arithmetic and comparisons
(with a graph tensor or a constant, which becomes a frozen weight), Clip,
Where, Softmax."""

import numpy as np

from mwconv.convert.onnx.common import ACTIVATIONS, Unsupported, axis as _axis, given, text
from mwconv.convert.onnx.registry import onnx_op

UNARY = ("Erf", "Sqrt", "Neg", "Abs", "Exp", "Log", "Reciprocal", "Floor", "Ceil", "Sin", "Cos", "Not", "Sign",
         "Round")
BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And",
          "Or", "Xor")


@onnx_op(*ACTIVATIONS)
def activation(g, node, a):
    from mwconv.layers.onnx_ops import OnnxActivation
    alpha, gamma = ACTIVATIONS[node.op_type]
    alpha = float(a.get("alpha", alpha)) if alpha is not None else None
    gamma = float(a.get("beta" if node.op_type == "HardSigmoid" else "gamma", gamma)) if gamma is not None else None
    return OnnxActivation(kind=node.op_type, alpha=alpha, gamma=gamma, name=g.name(node))(
        g.tensor(node.input[0], node))


@onnx_op("Gelu", since=20)
def gelu(g, node, a):
    from mwconv.layers.onnx_ops import OnnxActivation
    tanh = text(a.get("approximate", "none")) == "tanh"
    return OnnxActivation(kind="Gelu", alpha=1.0 if tanh else 0.0, gamma=None, name=g.name(node))(
        g.tensor(node.input[0], node))


@onnx_op(*UNARY)
def unary(g, node, a):
    from mwconv.layers.onnx_ops import OnnxUnary
    return OnnxUnary(kind=node.op_type, name=g.name(node))(g.tensor(node.input[0], node))


@onnx_op("Clip")
def clip(g, node, a):
    from mwconv.layers.onnx_ops import OnnxClip
    if "min" in a or "max" in a:                              # opset < 11
        low, high = a.get("min"), a.get("max")
    else:
        low, high = (float(g.const(given(node, i), node)) if given(node, i) else None for i in (1, 2))
    return OnnxClip(low=None if low is None else float(low), high=None if high is None else float(high),
                    name=g.name(node))(g.tensor(node.input[0], node))


@onnx_op("Sum", "Mean", "Max", "Min")
def variadic(g, node, a):
    """Sum/Mean/Max/Min of any number of tensors, as a chain of binary operators."""
    from mwconv.layers.onnx_ops import OnnxBinary, OnnxScale
    if len(node.input) == 2 and node.op_type in ("Max", "Min", "Sum"):
        return binary(g, node, a, "Add" if node.op_type == "Sum" else node.op_type)
    rank = max(g.rank(n, node) for n in node.input)
    xs = [g.operand(n, node, rank) for n in node.input]
    op = {"Sum": "Add", "Mean": "Add"}.get(node.op_type, node.op_type)
    out = xs[0]
    for i, x in enumerate(xs[1:]):
        out = OnnxBinary(op=op, name=g.name(node, str(i)))([out, x])
    if node.op_type == "Mean" and len(xs) > 1:
        out = OnnxScale(factor=1.0 / len(xs), name=g.name(node, "mean"))(out)
    return out


@onnx_op(*BINARY)
def binary(g, node, a, op=None):
    """``x op y`` for two graph tensors, or a graph tensor and a constant (a frozen weight)."""
    from mwconv.layers.onnx_ops import ConstantArithmetic, OnnxBinary
    op = op or node.op_type
    if len(node.input) != 2:
        raise Unsupported(f"{len(node.input)} operands (2 are supported)")
    left, right = node.input
    lc, rc = g.is_const(left), g.is_const(right)
    if not (lc or rc):
        return OnnxBinary(op=op, name=g.name(node))([g.tensor(left, node), g.tensor(right, node)])
    cname, xname = (left, right) if lc else (right, left)
    info, x = g.const_info(cname), g.tensor(xname, node)
    if len(info.shape) > len(x.shape) or (len(info.shape) == len(x.shape) and info.shape and info.shape[0] != 1):
        g.batch_axis([0], node, f"broadcasts the constant '{cname}' of shape {tuple(info.shape)} over the batch axis")
    dtype = np.dtype(info.dtype).name
    if np.dtype(info.dtype).kind in "iub" and x.dtype is not None and "float" in str(x.dtype):
        dtype = str(x.dtype)                                   # an integer constant against floats: cast
    layer = ConstantArithmetic(op=op, constant_shape=list(info.shape), reverse=lc, scale=1.0,
                               constant_dtype=dtype, name=g.name(node))
    out = layer(x)
    g.weight(layer, "constant", cname)
    return out


@onnx_op("Where")
def where(g, node, a):
    from mwconv.layers.onnx_ops import OnnxWhere
    rank = max(g.rank(n, node) for n in node.input)
    if all(g.is_const(n) for n in node.input[1:]) and g.is_const(node.input[0]):
        raise Unsupported("only constant operands (folded before)")
    return OnnxWhere(name=g.name(node))([g.operand(n, node, rank) for n in node.input])


@onnx_op("Softmax", "LogSoftmax")
def softmax(g, node, a):
    from mwconv.layers.onnx_ops import OnnxSoftmax
    x = g.tensor(node.input[0], node)
    legacy = g.opset < 13
    ax = _axis(a.get("axis", 1 if legacy else -1), len(x.shape))
    g.batch_axis([ax] + ([0] if legacy and ax == 0 else []), node, "takes a softmax over the batch axis")
    return OnnxSoftmax(axis=ax, log=node.op_type == "LogSoftmax", legacy=legacy, name=g.name(node))(x)
