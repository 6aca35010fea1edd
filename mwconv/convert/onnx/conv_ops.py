"""ONNX convolutions and pools (channels-last inside, in the graph's own layout outside)."""

from mwconv.convert.onnx.common import MAX_PAD, Unsupported, ints as _ints


class ConvOps:
    """Handlers ``op_<Type>(node, attrs)`` of the GraphBuilder, returning the output tensor."""

    def spatial_pads(self, node, attrs, in_shape, kernel, strides, dilations):
        """[(before, after)] per spatial axis from pads or auto_pad."""
        n = len(kernel)
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
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

    def _conv_geometry(self, node, a, kernel):
        n = len(kernel)
        strides = _ints(a.get("strides", [1] * n))
        dilations = _ints(a.get("dilations", [1] * n))
        return strides, dilations

    def op_Conv(self, node, a):
        x = self.tensor(node.input[0], node)
        w_info = self.src.info(node.input[1]) if node.input[1] in self.constants else None
        if w_info is None:
            raise Unsupported("a non-constant weight")
        out_ch, in_per_group, *kernel = w_info.shape
        n = len(kernel)
        if n not in (1, 2, 3):
            raise Unsupported(f"{n}-D convolution")
        strides, dilations = self._conv_geometry(node, a, kernel)
        if any(s > 1 for s in strides) and any(d > 1 for d in dilations):
            raise Unsupported("strides and dilations both above 1 (Keras cannot express it)")
        group = int(a.get("group", 1))
        channels = x.shape[1]
        pads = self.spatial_pads(node, a, list(x.shape[2:]), kernel, strides, dilations)
        has_bias = len(node.input) > 2 and bool(node.input[2])
        h = self.to_last(x, node)
        if any(p != (0, 0) for p in pads):
            from mwconv.layers.onnx_ops import OnnxPad
            h = OnnxPad(pads=[list(p) for p in pads] + [[0, 0]], mode="constant", value=0.0,
                        name=self.name(node, "pad"))(h)
        depthwise = group > 1 and group == channels and in_per_group == 1 and n in (1, 2)
        common = dict(kernel_size=tuple(kernel), strides=tuple(strides), dilation_rate=tuple(dilations),
                      padding="valid", use_bias=has_bias, name=self.name(node))
        if depthwise:
            cls = getattr(self.keras.layers, f"DepthwiseConv{n}D")
            layer = cls(depth_multiplier=out_ch // group, **common)
            transform = "depthwise"
        else:
            layer = getattr(self.keras.layers, f"Conv{n}D")(filters=out_ch, groups=group, **common)
            transform = "conv"
        h = layer(h)
        self.weight(layer, "kernel", node.input[1], transform)
        if has_bias:
            self.weight(layer, "bias", node.input[2])
        return self.to_first(h, node)

    def op_ConvTranspose(self, node, a):
        from mwconv.layers.onnx_ops import OnnxCrop
        x = self.tensor(node.input[0], node)
        if node.input[1] not in self.constants:
            raise Unsupported("a non-constant weight")
        in_ch, out_per_group, *kernel = self.src.info(node.input[1]).shape
        n = len(kernel)
        if int(a.get("group", 1)) != 1:
            raise Unsupported("group > 1")
        if "output_shape" in a:
            raise Unsupported("the output_shape attribute (give pads instead)")
        auto = a.get("auto_pad", b"NOTSET")
        if (auto.decode() if isinstance(auto, bytes) else auto) not in ("NOTSET", "VALID", ""):
            raise Unsupported("auto_pad SAME_* on ConvTranspose")
        strides, dilations = self._conv_geometry(node, a, kernel)
        out_pad = _ints(a.get("output_padding", [0] * n))
        pads = _ints(a.get("pads", [0] * (2 * n)))
        has_bias = len(node.input) > 2 and bool(node.input[2])
        h = self.to_last(x, node)
        cls = getattr(self.keras.layers, f"Conv{n}DTranspose")
        layer = cls(filters=out_per_group, kernel_size=tuple(kernel), strides=tuple(strides), padding="valid",
                    output_padding=tuple(out_pad) if any(out_pad) else None, dilation_rate=tuple(dilations),
                    use_bias=has_bias, name=self.name(node))
        h = layer(h)
        self.weight(layer, "kernel", node.input[1], "conv_transpose")
        if has_bias:
            self.weight(layer, "bias", node.input[2])
        crops = [[pads[i], pads[i + n]] for i in range(n)]
        if any(any(c) for c in crops):
            h = OnnxCrop(crops=crops + [[0, 0]], name=self.name(node, "crop"))(h)
        return self.to_first(h, node)

    def _pool(self, node, a, kind):
        from mwconv.layers.onnx_ops import OnnxPad
        x = self.tensor(node.input[0], node)
        kernel = _ints(a["kernel_shape"])
        n = len(kernel)
        if n not in (1, 2, 3):
            raise Unsupported(f"{n}-D pooling")
        strides = _ints(a.get("strides", [1] * n))
        if any(d != 1 for d in _ints(a.get("dilations", [1] * n))):
            raise Unsupported("dilations")
        if int(a.get("ceil_mode", 0)):
            raise Unsupported("ceil_mode=1")
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported("the Indices output")
        pads = self.spatial_pads(node, a, list(x.shape[2:]), kernel, strides, [1] * n)
        padded = any(p != (0, 0) for p in pads)
        if kind == "Average" and padded and not int(a.get("count_include_pad", 0)):
            raise Unsupported("padding with count_include_pad=0")
        h = self.to_last(x, node)
        if padded:
            h = OnnxPad(pads=[list(p) for p in pads] + [[0, 0]], mode="constant",
                        value=MAX_PAD if kind == "Max" else 0.0, name=self.name(node, "pad"))(h)
        cls = getattr(self.keras.layers, f"{kind}Pooling{n}D")
        h = cls(pool_size=tuple(kernel), strides=tuple(strides), padding="valid", name=self.name(node))(h)
        return self.to_first(h, node)

    def op_MaxPool(self, node, a):
        return self._pool(node, a, "Max")

    def op_AveragePool(self, node, a):
        return self._pool(node, a, "Average")
