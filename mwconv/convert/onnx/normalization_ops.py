"""ONNX normalizations, each a Keras layer holding its weights: BatchNormalization,
LayerNormalization, InstanceNormalization (a GroupNormalization with one group
per channel)."""

from mwconv.convert.onnx.common import Unsupported, axis as _axis
from mwconv.convert.onnx.registry import onnx_op


def _constants(g, node, names):
    if any(not g.is_const(n) for n in names if n):
        raise Unsupported("non-constant scale/bias/statistics")


def _single_output(node, what):
    if len([o for o in node.output if o]) > 1:
        raise Unsupported(what)


@onnx_op("BatchNormalization")
def batch_normalization(g, node, a):
    if not int(a.get("spatial", 1)):
        raise Unsupported("spatial=0")
    _single_output(node, "training-mode outputs")
    names = node.input[1:5]
    _constants(g, node, names)
    layer = g.keras.layers.BatchNormalization(axis=1, epsilon=float(a.get("epsilon", 1e-5)), name=g.name(node))
    out = layer(g.tensor(node.input[0], node))
    for weight, source in zip(("gamma", "beta", "moving_mean", "moving_variance"), names):
        g.weight(layer, weight, source)
    return out


@onnx_op("LayerNormalization", since=17)
def layer_normalization(g, node, a):
    _single_output(node, "its Mean or InvStdDev output is used")
    x = g.tensor(node.input[0], node)
    rank = len(x.shape)
    first = _axis(a.get("axis", -1), rank)
    g.batch_axis([first], node, "normalizes over the batch axis")
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    _constants(g, node, [node.input[1], bias])
    axes = list(range(first, rank))
    layer = g.keras.layers.LayerNormalization(axis=axes if len(axes) > 1 else axes[0],
                                              epsilon=float(a.get("epsilon", 1e-5)), center=bias is not None,
                                              name=g.name(node))
    out = layer(x)
    g.weight(layer, "gamma", node.input[1], "reshape")
    if bias:
        g.weight(layer, "beta", bias, "reshape")
    return out


@onnx_op("InstanceNormalization")
def instance_normalization(g, node, a):
    x = g.tensor(node.input[0], node)
    _constants(g, node, node.input[1:3])
    channels = x.shape[1]
    if channels is None or len(x.shape) < 3:
        raise Unsupported("an input without a static channel axis 1 and spatial axes")
    layer = g.keras.layers.GroupNormalization(groups=channels, axis=1, epsilon=float(a.get("epsilon", 1e-5)),
                                              name=g.name(node))
    out = layer(x)
    g.weight(layer, "gamma", node.input[1])
    g.weight(layer, "beta", node.input[2])
    return out
