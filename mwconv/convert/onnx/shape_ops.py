"""ONNX ops that reshape, reorder, pad or activate tensors (no weights)."""

from mwconv.convert.onnx.common import ACTIVATIONS, Unsupported, ints as _ints


class ShapeOps:
    """Handlers ``op_<Type>(node, attrs)`` of the GraphBuilder, returning the output tensor."""

    def op_Identity(self, node, a):
        return self.tensor(node.input[0], node)

    def op_Dropout(self, node, a):
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported("its mask output is used")
        return self.tensor(node.input[0], node)

    def op_activation(self, node, a):
        from mwconv.layers.onnx_ops import OnnxActivation
        alpha, gamma = ACTIVATIONS[node.op_type]
        alpha = float(a.get("alpha", alpha)) if alpha is not None else None
        gamma = float(a.get("gamma", gamma)) if gamma is not None else None
        return OnnxActivation(kind=node.op_type, alpha=alpha, gamma=gamma, name=self.name(node))(
            self.tensor(node.input[0], node))

    def op_Softmax(self, node, a, log=False):
        from mwconv.layers.onnx_ops import OnnxSoftmax
        x = self.tensor(node.input[0], node)
        legacy = self.opset < 13
        axis = int(a.get("axis", 1 if legacy else -1))
        axis = axis + len(x.shape) if axis < 0 else axis
        if axis == 0:
            raise Unsupported("softmax over the batch axis")
        return OnnxSoftmax(axis=axis, log=log, legacy=legacy, name=self.name(node))(x)

    def op_LogSoftmax(self, node, a):
        return self.op_Softmax(node, a, log=True)

    def op_Flatten(self, node, a):
        x = self.tensor(node.input[0], node)
        axis = int(a.get("axis", 1))
        axis = axis + len(x.shape) if axis < 0 else axis
        if axis != 1:
            raise Unsupported(f"axis={axis} (only 1 keeps the batch axis)")
        return self.keras.layers.Flatten(name=self.name(node))(x)

    def op_Reshape(self, node, a):
        from mwconv.layers.onnx_ops import OnnxReshape
        x = self.tensor(node.input[0], node)
        shape = _ints(a["shape"]) if "shape" in a else _ints(self.const(node.input[1], node).ravel())
        dims = list(x.shape)
        shape = [dims[i] if s == 0 and i < len(dims) else s for i, s in enumerate(shape)]
        if not shape or (shape[0] not in (-1, None) and shape[0] != dims[0]):
            raise Unsupported(f"shape {shape} does not keep the batch axis first")
        rest = [int(s) if s is not None else -1 for s in shape[1:]]
        if shape[0] == -1 and -1 in rest:
            raise Unsupported(f"shape {shape} has two unknown sizes")
        return OnnxReshape(shape=rest, name=self.name(node))(x)

    def op_Transpose(self, node, a):
        from mwconv.layers.onnx_ops import OnnxTranspose
        x = self.tensor(node.input[0], node)
        perm = _ints(a.get("perm", list(range(len(x.shape)))[::-1]))
        if perm[0] != 0:
            raise Unsupported(f"perm {perm} moves the batch axis")
        return OnnxTranspose(perm=perm, name=self.name(node))(x)

    def op_Concat(self, node, a):
        xs = [self.tensor(n, node) for n in node.input]
        axis = int(a["axis"])
        axis = axis + len(xs[0].shape) if axis < 0 else axis
        if axis == 0:
            raise Unsupported("concatenation along the batch axis")
        return self.keras.layers.Concatenate(axis=axis, name=self.name(node))(xs)

    def op_GlobalAveragePool(self, node, a):
        from mwconv.layers.onnx_ops import OnnxGlobalAveragePool
        return OnnxGlobalAveragePool(name=self.name(node))(self.tensor(node.input[0], node))

    def op_Pad(self, node, a):
        from mwconv.layers.onnx_ops import OnnxPad
        x = self.tensor(node.input[0], node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("constant", "reflect"):
            raise Unsupported(f"mode={mode} (constant and reflect are supported)")
        if "pads" in a:
            pads, value = _ints(a["pads"]), float(a.get("value", 0.0))
        else:
            pads = _ints(self.const(node.input[1], node).ravel())
            value = float(self.const(node.input[2], node)) if len(node.input) > 2 and node.input[2] else 0.0
            if len(node.input) > 3 and node.input[3]:
                raise Unsupported("the axes input")
        n = len(x.shape)
        widths = [(pads[i], pads[i + n]) for i in range(n)]
        if widths[0] != (0, 0) or any(b < 0 or e < 0 for b, e in widths):
            raise Unsupported(f"pads {pads} (batch-axis or negative pads)")
        return OnnxPad(pads=[list(w) for w in widths[1:]], mode=mode, value=value, name=self.name(node))(x)
