"""ONNX convolutions and pools (channels-last inside, in the graph's own layout outside)."""

from mwconv.convert.onnx.common import MAX_PAD, Unsupported, given, ints as _ints, text
from mwconv.convert.onnx.registry import onnx_op


def spatial_pads(attrs, in_shape, kernel, strides, dilations):
    """[(before, after)] per spatial axis from pads or auto_pad."""
    n = len(kernel)
    auto = text(attrs.get("auto_pad", "NOTSET"))
    if auto in ("NOTSET", ""):
        pads = _ints(attrs.get("pads", [0] * (2 * n)))
        return [(pads[i], pads[i + n]) for i in range(n)]
    if auto == "VALID":
        return [(0, 0)] * n
    if any(d is None for d in in_shape):
        raise Unsupported(f"auto_pad={auto} needs static spatial sizes")
    out = []
    for size, k, s, d in zip(in_shape, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _geometry(a, n):
    return _ints(a.get("strides", [1] * n)), _ints(a.get("dilations", [1] * n))


def _pad(g, h, node, pads, value=0.0):
    from mwconv.layers.onnx_ops import OnnxPad
    if all(p == (0, 0) for p in pads):
        return h
    return OnnxPad(pads=[list(p) for p in pads] + [[0, 0]], mode="constant", value=value,
                   name=g.name(node, "pad"))(h)


def _input_and_weight(g, node):
    """The input tensor and the (constant) weight's shape of a Conv or ConvTranspose."""
    if not g.is_const(node.input[1]):
        raise Unsupported("a non-constant weight")
    return g.tensor(node.input[0], node), g.const_info(node.input[1]).shape


@onnx_op("Conv")
def conv(g, node, a):
    from mwconv.layers.onnx_ops import OnnxSlice
    x, (out_ch, in_per_group, *kernel) = _input_and_weight(g, node)
    n = len(kernel)
    if n not in (1, 2, 3):
        raise Unsupported(f"{n}-D convolution")
    strides, dilations = _geometry(a, n)
    # Keras cannot stride a dilated convolution: run it at stride 1, then keep every s-th position
    subsample = strides if any(s > 1 for s in strides) and any(d > 1 for d in dilations) else None
    group = int(a.get("group", 1))
    pads = spatial_pads(a, list(x.shape[2:]), kernel, strides, dilations)
    bias = given(node, 2)
    h = _pad(g, g.to_last(x, node), node, pads)
    depthwise = group > 1 and group == x.shape[1] and in_per_group == 1 and n in (1, 2)
    common = dict(kernel_size=tuple(kernel), strides=(1,) * n if subsample else tuple(strides),
                  dilation_rate=tuple(dilations), padding="valid", use_bias=bias is not None, name=g.name(node))
    if depthwise:
        layer = getattr(g.keras.layers, f"DepthwiseConv{n}D")(depth_multiplier=out_ch // group, **common)
    else:
        layer = getattr(g.keras.layers, f"Conv{n}D")(filters=out_ch, groups=group, **common)
    h = layer(h)
    g.weight(layer, "kernel", node.input[1], "depthwise" if depthwise else "conv")
    if bias:
        g.weight(layer, "bias", bias)
    if subsample:
        h = OnnxSlice(slices=[[i + 1, 0, None, s] for i, s in enumerate(subsample)], name=g.name(node, "stride"))(h)
    return g.to_first(h, node)


@onnx_op("ConvTranspose")
def conv_transpose(g, node, a):
    from mwconv.layers.onnx_ops import OnnxCrop
    x, (in_ch, out_per_group, *kernel) = _input_and_weight(g, node)
    n = len(kernel)
    if int(a.get("group", 1)) != 1:
        raise Unsupported("group > 1")
    if "output_shape" in a:
        raise Unsupported("the output_shape attribute (give pads instead)")
    if text(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID", ""):
        raise Unsupported("auto_pad SAME_* on ConvTranspose")
    strides, dilations = _geometry(a, n)
    out_pad = _ints(a.get("output_padding", [0] * n))
    pads = _ints(a.get("pads", [0] * (2 * n)))
    bias = given(node, 2)
    cls = getattr(g.keras.layers, f"Conv{n}DTranspose")
    layer = cls(filters=out_per_group, kernel_size=tuple(kernel), strides=tuple(strides), padding="valid",
                output_padding=tuple(out_pad) if any(out_pad) else None, dilation_rate=tuple(dilations),
                use_bias=bias is not None, name=g.name(node))
    h = layer(g.to_last(x, node))
    g.weight(layer, "kernel", node.input[1], "conv_transpose")
    if bias:
        g.weight(layer, "bias", bias)
    crops = [[pads[i], pads[i + n]] for i in range(n)]
    if any(any(c) for c in crops):
        h = OnnxCrop(crops=crops + [[0, 0]], name=g.name(node, "crop"))(h)
    return g.to_first(h, node)


def _ceil_extra(sizes, kernel, strides, pads):
    """Extra end padding per axis that turns ceil_mode=1 into floor mode (a window must
    start inside the input or its left padding, as PyTorch and onnxruntime count)."""
    extra = []
    for size, k, s, (before, after) in zip(sizes, kernel, strides, pads):
        if size is None:
            raise Unsupported("ceil_mode=1 needs static spatial sizes")
        span = size + before + after - k
        out = -(-span // s) + 1
        if (out - 1) * s >= size + before:
            out -= 1
        extra.append(max((out - 1) * s + k - (size + before + after), 0))
    return extra


def _pool(g, node, a, kind):
    x = g.tensor(node.input[0], node)
    kernel = _ints(a["kernel_shape"])
    n = len(kernel)
    if n not in (1, 2, 3):
        raise Unsupported(f"{n}-D pooling")
    strides = _ints(a.get("strides", [1] * n))
    dilations = _ints(a.get("dilations", [1] * n))
    if any(d != 1 for d in dilations) and kind == "Average":
        raise Unsupported("dilations on AveragePool")
    if len(node.output) > 1 and node.output[1]:
        raise Unsupported("the Indices output")
    pads = spatial_pads(a, list(x.shape[2:]), kernel, strides, dilations)
    if kind == "Average" and any(p != (0, 0) for p in pads) and not int(a.get("count_include_pad", 0)):
        raise Unsupported("padding with count_include_pad=0")
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if int(a.get("ceil_mode", 0)):
        extra = _ceil_extra(list(x.shape[2:]), span, strides, pads)
        if kind == "Average" and any(extra):
            raise Unsupported("ceil_mode=1 where a window runs past the input (its divisor differs)")
        pads = [(b, e + x) for (b, e), x in zip(pads, extra)]
    h = _pad(g, g.to_last(x, node), node, pads, MAX_PAD if kind == "Max" else 0.0)
    if any(d != 1 for d in dilations):
        from mwconv.layers.onnx_ops import OnnxDilatedMaxPool
        if any(size is None for size in h.shape[1:-1]):
            raise Unsupported("dilations need static spatial sizes")
        h = OnnxDilatedMaxPool(kernel=kernel, strides=strides, dilations=dilations, name=g.name(node))(h)
        return g.to_first(h, node)
    cls = getattr(g.keras.layers, f"{kind}Pooling{n}D")
    h = cls(pool_size=tuple(kernel), strides=tuple(strides), padding="valid", name=g.name(node))(h)
    return g.to_first(h, node)


@onnx_op("MaxPool")
def max_pool(g, node, a):
    return _pool(g, node, a, "Max")


@onnx_op("AveragePool")
def average_pool(g, node, a):
    return _pool(g, node, a, "Average")


@onnx_op("GlobalAveragePool")
def global_average_pool(g, node, a):
    from mwconv.layers.onnx_ops import OnnxGlobalAveragePool
    return OnnxGlobalAveragePool(name=g.name(node))(g.tensor(node.input[0], node))


@onnx_op("GlobalMaxPool")
def global_max_pool(g, node, a):
    from mwconv.layers.onnx_ops import OnnxReduce
    x = g.tensor(node.input[0], node)
    return OnnxReduce(kind="ReduceMax", axes=list(range(2, len(x.shape))), keepdims=1, name=g.name(node))(x)
