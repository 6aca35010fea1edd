"""ONNX ops that hold weights in Dense-like layers: MatMul, Gemm, Gather
(embeddings, or indexing a graph tensor) and PRelu."""

import numpy as np

from mwconv.convert.onnx.common import Unsupported, axis as _axis, given
from mwconv.convert.onnx.elementwise_ops import binary
from mwconv.convert.onnx.registry import onnx_op


@onnx_op("MatMul")
def matmul(g, node, a):
    if g.is_const(node.input[0]):
        raise Unsupported("a constant first operand")
    if not g.is_const(node.input[1]):
        return binary(g, node, a)
    info = g.const_info(node.input[1])
    if len(info.shape) != 2:
        raise Unsupported(f"a {len(info.shape)}-D constant operand")
    if g.rank(node.input[0], node) < 2:
        raise Unsupported("a 1-D first operand")
    layer = g.keras.layers.Dense(info.shape[1], use_bias=False, name=g.name(node))
    out = layer(g.tensor(node.input[0], node))
    g.weight(layer, "kernel", node.input[1], "none")
    return out


@onnx_op("Gemm")
def gemm(g, node, a):
    from mwconv.layers.onnx_ops import ConstantArithmetic, OnnxScale, OnnxTranspose
    if not g.is_const(node.input[1]) or g.is_const(node.input[0]):
        return _gemm_of_tensors(g, node, a)
    trans_b = int(a.get("transB", 0))
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    b_shape = g.const_info(node.input[1]).shape
    units = b_shape[0] if trans_b else b_shape[1]
    c = given(node, 2)
    c_shape = tuple(g.const_info(c).shape) if c else None
    if c and not g.is_const(c):
        raise Unsupported("a non-constant C")
    if c and int(np.prod(c_shape)) != units and int(np.prod(c_shape)) != 1:
        raise Unsupported(f"C of shape {c_shape} (a per-sample bias)")
    fused = c is not None and alpha == 1.0 and beta == 1.0 and int(np.prod(c_shape)) == units
    dense = g.keras.layers.Dense(units, use_bias=fused, name=g.name(node))
    a_in = g.tensor(node.input[0], node)
    if int(a.get("transA", 0)):  # A is (K, M): its first axis is Keras's batch axis here
        known = list(g.shapes.get(node.input[0]) or [None, None])
        a_in = OnnxTranspose(perm=[1, 0], known=known, name=g.name(node, "transA"))(a_in)
    out = dense(a_in)
    g.weight(dense, "kernel", node.input[1], "linear" if trans_b else "none")
    if fused:
        g.weight(dense, "bias", c, "reshape")
        return out
    if alpha != 1.0:
        out = OnnxScale(factor=alpha, name=g.name(node, "alpha"))(out)
    if c is not None and beta != 0.0:
        add = ConstantArithmetic(op="Add", constant_shape=list(c_shape), reverse=False, scale=beta,
                                 name=g.name(node, "bias"))
        out = add(out)
        g.weight(add, "constant", c)
    return out


def _gemm_of_tensors(g, node, a):
    """Gemm whose B is a graph tensor (or whose A is a constant): ``alpha * A' @ B' + beta * C``."""
    from mwconv.layers.onnx_ops import OnnxGemm
    g.batch_axis([0], node, "multiplies two graph tensors as matrices, batch axes included")
    operands = [g.operand(n, node, 2) for n in node.input if n]
    return OnnxGemm(trans_a=int(a.get("transA", 0)), trans_b=int(a.get("transB", 0)), alpha=float(a.get("alpha", 1.0)),
                    beta=float(a.get("beta", 1.0)), name=g.name(node))(operands)


@onnx_op("Gather")
def gather(g, node, a):
    if not g.is_const(node.input[0]):
        return _index(g, node, a)
    info = g.const_info(node.input[0])
    if int(a.get("axis", 0)) != 0 or len(info.shape) != 2 or g.is_const(node.input[1]):
        raise Unsupported("anything but rows of a 2-D initializer (an embedding) picked by a graph tensor")
    layer = g.keras.layers.Embedding(info.shape[0], info.shape[1], name=g.name(node))
    out = layer(g.tensor(node.input[1], node))
    g.weight(layer, "embeddings", node.input[0])
    return out


def _index(g, node, a):
    """Gather from a graph tensor with constant indices (``x[:, 0]``)."""
    from mwconv.layers.onnx_ops import OnnxGather
    x = g.tensor(node.input[0], node)
    ax = _axis(a.get("axis", 0), len(x.shape))
    g.batch_axis([ax], node, "indexes the batch axis")
    if not g.is_const(node.input[1]):
        raise Unsupported("indices computed by the graph")
    indices = g.const(node.input[1], node).astype(np.int64)
    dim = x.shape[ax]
    if (indices < 0).any():
        if dim is None:
            raise Unsupported("negative indices into an axis whose size is not static")
        indices = np.where(indices < 0, indices + dim, indices)
    if dim is not None and ((indices < 0) | (indices >= dim)).any():
        raise Unsupported(f"indices {indices.ravel().tolist()[:8]} outside the axis of size {dim}")
    value = int(indices) if indices.ndim == 0 else indices.tolist()
    return OnnxGather(indices=value, axis=ax, name=g.name(node))(x)


@onnx_op("PRelu")
def prelu(g, node, a):
    x = g.tensor(node.input[0], node)
    if not g.is_const(node.input[1]):
        raise Unsupported("a non-constant slope")
    slope = tuple(g.const_info(node.input[1]).shape)
    r = len(x.shape) - 1
    if len(slope) > r:
        raise Unsupported(f"slope of shape {slope}")
    if g.opset < 7 and len(slope) == 1 and r >= 2 and slope[0] == x.shape[1]:
        padded = slope + (1,) * (r - 1)      # opset 6: one slope per channel (axis 1)
    else:
        padded = (1,) * (r - len(slope)) + slope
    shared = [i + 1 for i, d in enumerate(padded) if d == 1]
    layer = g.keras.layers.PReLU(shared_axes=shared or None, name=g.name(node))
    out = layer(x)
    g.weight(layer, "alpha", node.input[1], "reshape")
    return out
