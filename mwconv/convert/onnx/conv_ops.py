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
    group = int(a.get("group", 1))
    depthwise = group > 1 and group == x.shape[1] and in_per_group == 1 and n in (1, 2)
    # Keras cannot stride a dilated convolution, nor TensorFlow a depthwise one unequally
    # (strides (2, 1) in OCR classifiers): run it at stride 1, then keep every s-th position
    subsample = strides if any(s > 1 for s in strides) and (
        any(d > 1 for d in dilations) or (depthwise and len(set(strides)) > 1)) else None
    pads = spatial_pads(a, list(x.shape[2:]), kernel, strides, dilations)
    bias = given(node, 2)
    h = _pad(g, g.to_last(x, node), node, pads)
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
    exclude = kind == "Average" and not int(a.get("count_include_pad", 0))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if int(a.get("ceil_mode", 0)):
        extra = _ceil_extra(list(x.shape[2:]), span, strides, pads)
        if kind == "Average" and any(extra) and not exclude:
            raise Unsupported("ceil_mode=1 with count_include_pad=1 where a window runs past the input")
        pads = [(b, e + x) for (b, e), x in zip(pads, extra)]
    if exclude and any(p != (0, 0) for p in pads):
        from mwconv.layers.onnx_pool import OnnxExcludePadAveragePool
        layer = OnnxExcludePadAveragePool(pool_size=kernel, strides=strides, pads=pads, name=g.name(node))
        return g.to_first(layer(g.to_last(x, node)), node)
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


def _resize_target(g, node, a, x, opset_inputs):
    """``(scales, sizes)`` per axis from the node's constant inputs (or Upsample's attribute)."""
    rank = len(x.shape)
    names = {k: given(node, i) for k, i in opset_inputs.items()}
    if "scales" in a:                                          # Upsample-7: an attribute
        return [float(s) for s in a["scales"]], None
    if names.get("sizes"):
        sizes = [int(s) for s in g.const(names["sizes"], node).reshape(-1)]
        axes = _ints(a.get("axes", range(rank)))
        if len(sizes) != len(axes):
            raise Unsupported(f"{len(sizes)} sizes for {len(axes)} axes")
        full = list(x.shape)
        for axis, size in zip(axes, sizes):
            full[axis] = size
        return None, full
    if names.get("scales"):
        scales = [float(s) for s in g.const(names["scales"], node).reshape(-1)]
        if scales:
            axes = _ints(a.get("axes", range(rank)))
            full = [1.0] * rank
            for axis, scale in zip(axes, scales):
                full[axis] = scale
            return full, None
    raise Unsupported("neither scales nor sizes is given")


@onnx_op("Resize", "Upsample")
def resize(g, node, a):
    """Nearest (each nearest_mode), linear and cubic on the spatial axes, every coordinate
    transform but tf_crop_and_resize; the output sizes must be known at import time."""
    from mwconv.layers.onnx_resize import COORDINATE_MODES, MODES, OnnxResize, output_size
    x = g.tensor(node.input[0], node)
    legacy = node.op_type == "Upsample" or len(node.input) == 2      # Upsample, Resize-10: X, scales
    scales, sizes = _resize_target(g, node, a, x, {"scales": 1} if legacy else {"roi": 1, "scales": 2, "sizes": 3})
    mode = text(a.get("mode", "nearest"))
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(mode, mode)
    coordinate = "asymmetric" if legacy else text(a.get("coordinate_transformation_mode", "half_pixel"))
    nearest = "floor" if legacy else text(a.get("nearest_mode", "round_prefer_floor"))
    if mode not in MODES or coordinate not in COORDINATE_MODES:
        raise Unsupported(f"mode {mode}, coordinate_transformation_mode {coordinate}")
    if int(a.get("antialias", 0)) or text(a.get("keep_aspect_ratio_policy", "stretch")) != "stretch":
        raise Unsupported("antialias or keep_aspect_ratio_policy")
    dims = list(x.shape)
    sizes = sizes or [d if s == 1.0 else (output_size(d, s) if d is not None else None) for d, s in zip(dims, scales)]
    axes = [i for i, (d, s) in enumerate(zip(dims, sizes)) if d != s and not (i == 0 and d is None)]
    if any(i < 2 for i in axes):
        raise Unsupported("resizing the batch or channel axis")
    if any(dims[i] is None or sizes[i] is None for i in axes):
        raise Unsupported("spatial sizes that are only known at run time")
    if not axes:
        return x
    used = [scales[i] if scales else sizes[i] / dims[i] for i in axes]
    return OnnxResize(axes=axes, in_sizes=[dims[i] for i in axes], out_sizes=[sizes[i] for i in axes], scales=used,
                      mode=mode, coordinate=coordinate, nearest=nearest, cubic_a=float(a.get("cubic_coeff_a", -0.75)),
                      exclude_outside=bool(int(a.get("exclude_outside", 0))), name=g.name(node))(x)
