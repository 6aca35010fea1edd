"""Build a Keras functional model from an ONNX graph, for ``mwconv import
model.onnx`` without ``--model``.

Weight-bearing operators become (mixed) Keras layers whose weights the
importer fills from the initializers; the others become small registered
layers (``mwconv.layers.onnx_ops``). The model takes and returns tensors in
the ONNX model's own layout (NCHW stays NCHW: convolutions and pools run
channels-last between two transposes, since TensorFlow's CPU kernels are
channels-last only); ``channels_last=True`` gives an NHWC model instead.
"""

import re

import numpy as np

from mwconv.errors import InputRejected

SUPPORTED = sorted([
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Conv", "ConvTranspose", "Gather", "BatchNormalization",
    "PRelu", "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus",
    "Softsign", "Flatten", "Reshape", "Transpose", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
    "Pad", "Identity", "Dropout",
])
ACTIVATIONS = {"Relu": (None, None), "LeakyRelu": (0.01, None), "Elu": (1.0, None),
               "Selu": (1.6732632423543772, 1.0507009873554805), "Sigmoid": (None, None), "Tanh": (None, None),
               "Softplus": (None, None), "Softsign": (None, None)}
MAX_PAD = -3.4e38   # padding value for MaxPool (a finite float32 lowest, JSON-safe)


class Unsupported(Exception):
    """This node cannot be converted; the message says why."""


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ints(values):
    return [int(v) for v in values]


class GraphBuilder:
    def __init__(self, source, channels_last=False):
        import onnx

        from mwconv.modelio import keras_api
        self.keras = keras_api()
        self.src = source
        self.model = source.model
        self.graph = self.model.graph
        self.channels_last = channels_last
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.constants = set(source.keys())
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model)
        except Exception:  # noqa: BLE001 - shape inference is a best effort; missing shapes are handled
            inferred = self.model
        self.shapes = {}
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        self.tensors = {}
        self.assignments = []      # (layer, weight name, source tensor, transform)
        self.attribute_constants = set()
        self._names = set()

    # -- helpers --------------------------------------------------------------
    def name(self, node, suffix=""):
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name or "") or f"{node.op_type.lower()}"
        base = re.sub(r"^_+", "", base) or node.op_type.lower()
        if suffix:
            base = f"{base}_{suffix}"
        candidate, i = base, 1
        while candidate in self._names:
            candidate, i = f"{base}_{i}", i + 1
        self._names.add(candidate)
        return candidate

    def const(self, name, node):
        if name not in self.constants:
            raise Unsupported(f"input '{name}' must be an initializer or Constant")
        self.attribute_constants.add(name)
        return np.asarray(self.src.get_tensor(name))

    def tensor(self, name, node):
        if name in self.tensors:
            return self.tensors[name]
        if name in self.constants:
            raise Unsupported(f"input '{name}' is a constant where mwconv needs a graph tensor")
        raise InputRejected(f"node '{node.name}' ({node.op_type}) reads '{name}', which no graph input, initializer "
                            "or earlier node produces (malformed graph)", path=self.src.path)

    def weight(self, layer, weight_name, source_name, transform="none"):
        self.attribute_constants.discard(source_name)
        self.assignments.append((layer, weight_name, source_name, transform))

    def rank(self, name, node):
        t = self.tensors.get(name)
        if t is not None:
            return len(t.shape)
        raise Unsupported(f"rank of '{name}' is unknown")

    def to_last(self, x, node):
        from mwconv.layers.onnx_ops import OnnxTranspose
        r = len(x.shape)
        return OnnxTranspose(perm=[0] + list(range(2, r)) + [1], name=self.name(node, "to_nhwc"))(x)

    def to_first(self, x, node):
        from mwconv.layers.onnx_ops import OnnxTranspose
        r = len(x.shape)
        return OnnxTranspose(perm=[0, r - 1] + list(range(1, r - 1)), name=self.name(node, "to_nchw"))(x)

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

    # -- operators ------------------------------------------------------------------
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

    def _binary(self, node, a):
        from mwconv.layers.onnx_ops import ConstantArithmetic, OnnxBinary
        left, right = node.input[0], node.input[1]
        lc, rc = left in self.constants, right in self.constants
        if lc and rc:
            raise Unsupported("both operands are constants (fold them first)")
        if not (lc or rc):
            return OnnxBinary(op=node.op_type, name=self.name(node))([self.tensor(left, node), self.tensor(right, node)])
        cname, xname = (left, right) if lc else (right, left)
        info = self.src.info(cname)
        if np.dtype(info.dtype).kind != "f":
            raise Unsupported(f"constant '{cname}' is {info.dtype} (float constants are supported)")
        layer = ConstantArithmetic(op=node.op_type, constant_shape=list(info.shape), reverse=lc, scale=1.0,
                                   name=self.name(node))
        out = layer(self.tensor(xname, node))
        self.weight(layer, "constant", cname)
        return out

    op_Add = op_Sub = op_Mul = op_Div = _binary

    def op_MatMul(self, node, a):
        if node.input[0] in self.constants:
            raise Unsupported("a constant first operand")
        if node.input[1] not in self.constants:
            return self._binary(node, a)
        info = self.src.info(node.input[1])
        if len(info.shape) != 2:
            raise Unsupported(f"a {len(info.shape)}-D constant operand")
        layer = self.keras.layers.Dense(info.shape[1], use_bias=False, name=self.name(node))
        out = layer(self.tensor(node.input[0], node))
        self.weight(layer, "kernel", node.input[1], "none")
        return out

    def op_Gemm(self, node, a):
        from mwconv.layers.onnx_ops import ConstantArithmetic, OnnxScale, OnnxTranspose
        if node.input[1] not in self.constants:
            raise Unsupported("a non-constant B")
        trans_b = int(a.get("transB", 0))
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        b_shape = self.src.info(node.input[1]).shape
        units = b_shape[0] if trans_b else b_shape[1]
        c = node.input[2] if len(node.input) > 2 and node.input[2] else None
        c_shape = tuple(self.src.info(c).shape) if c else None
        if c and int(np.prod(c_shape)) != units and int(np.prod(c_shape)) != 1:
            raise Unsupported(f"C of shape {c_shape} (a per-sample bias)")
        fused = c is not None and alpha == 1.0 and beta == 1.0 and int(np.prod(c_shape)) == units
        dense = self.keras.layers.Dense(units, use_bias=fused, name=self.name(node))
        a_in = self.tensor(node.input[0], node)
        if int(a.get("transA", 0)):  # A is (K, M): its first axis is Keras's batch axis here
            known = list(self.shapes.get(node.input[0]) or [None, None])
            a_in = OnnxTranspose(perm=[1, 0], known=known, name=self.name(node, "transA"))(a_in)
        out = dense(a_in)
        self.weight(dense, "kernel", node.input[1], "linear" if trans_b else "none")
        if fused:
            self.weight(dense, "bias", c, "reshape")
            return out
        if alpha != 1.0:
            out = OnnxScale(factor=alpha, name=self.name(node, "alpha"))(out)
        if c is not None and beta != 0.0:
            add = ConstantArithmetic(op="Add", constant_shape=list(c_shape), reverse=False, scale=beta,
                                     name=self.name(node, "bias"))
            out = add(out)
            self.weight(add, "constant", c)
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

    def op_Gather(self, node, a):
        if node.input[0] not in self.constants:
            raise Unsupported("data that is not an initializer")
        info = self.src.info(node.input[0])
        if int(a.get("axis", 0)) != 0 or len(info.shape) != 2:
            raise Unsupported("anything but rows of a 2-D initializer (an embedding)")
        layer = self.keras.layers.Embedding(info.shape[0], info.shape[1], name=self.name(node))
        out = layer(self.tensor(node.input[1], node))
        self.weight(layer, "embeddings", node.input[0])
        return out

    def op_BatchNormalization(self, node, a):
        if not int(a.get("spatial", 1)):
            raise Unsupported("spatial=0")
        if len([o for o in node.output if o]) > 1:
            raise Unsupported("training-mode outputs")
        names = node.input[1:5]
        if any(n not in self.constants for n in names):
            raise Unsupported("non-constant scale/bias/mean/var")
        layer = self.keras.layers.BatchNormalization(axis=1, epsilon=float(a.get("epsilon", 1e-5)),
                                                     name=self.name(node))
        out = layer(self.tensor(node.input[0], node))
        for weight, source in zip(("gamma", "beta", "moving_mean", "moving_variance"), names):
            self.weight(layer, weight, source)
        return out

    def op_PRelu(self, node, a):
        x = self.tensor(node.input[0], node)
        if node.input[1] not in self.constants:
            raise Unsupported("a non-constant slope")
        slope = tuple(self.src.info(node.input[1]).shape)
        r = len(x.shape) - 1
        if len(slope) > r:
            raise Unsupported(f"slope of shape {slope}")
        padded = (1,) * (r - len(slope)) + slope
        shared = [i + 1 for i, d in enumerate(padded) if d == 1]
        layer = self.keras.layers.PReLU(shared_axes=shared or None, name=self.name(node))
        out = layer(x)
        self.weight(layer, "alpha", node.input[1], "reshape")
        return out

    # -- the whole graph -----------------------------------------------------------------
    def converter(self, op_type):
        if op_type in ACTIVATIONS:
            return self.op_activation
        return getattr(self, f"op_{op_type}", None)

    def build(self):
        keras = self.keras
        graph = self.graph
        unsupported = {}
        for node in graph.node:
            if node.domain not in ("", "ai.onnx") or self.converter(node.op_type) is None:
                unsupported.setdefault(node.op_type, []).append(node.name or "(unnamed)")
        if unsupported:
            self._raise_unsupported(unsupported)
        inputs = {}
        for vi in graph.input:
            if vi.name in self.constants:
                continue
            from onnx import helper
            dims = self.shapes.get(vi.name)
            if not dims:
                raise InputRejected(f"graph input '{vi.name}' has no shape (a batch axis first is needed)",
                                    path=self.src.path)
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)).name
            name = vi.name if re.fullmatch(r"[A-Za-z0-9_.\-]+", vi.name) else re.sub(r"[^A-Za-z0-9_]", "_", vi.name)
            rest = list(dims[1:])
            if self.channels_last and len(dims) >= 3:
                inp = keras.Input(shape=tuple(rest[1:] + rest[:1]), dtype=dtype, name=name)
                from mwconv.layers.onnx_ops import OnnxTranspose
                r = len(dims)
                self.tensors[vi.name] = OnnxTranspose(perm=[0, r - 1] + list(range(1, r - 1)),
                                                      name=f"{name}_to_nchw")(inp)
            else:
                inp = keras.Input(shape=tuple(rest), dtype=dtype, name=name)
                self.tensors[vi.name] = inp
            inputs[name] = inp
            self._names.add(name)
        problems = {}
        for node in graph.node:
            converter = self.converter(node.op_type)
            try:
                out = converter(node, _attrs(node))
            except Unsupported as e:
                problems.setdefault(node.op_type, []).append(f"{node.name or '(unnamed)'}: {e}")
                continue
            except KeyError as e:
                raise InputRejected(f"node '{node.name}' ({node.op_type}) lacks the attribute {e} (malformed graph)",
                                    path=self.src.path) from e
            self.tensors[node.output[0]] = out
        if problems:
            self._raise_unsupported(problems, detail=True)
        outputs = []
        for vi in graph.output:
            if vi.name not in self.tensors or vi.name in inputs:
                raise InputRejected(f"graph output '{vi.name}' is not computed by any node (malformed graph or a "
                                    "constant output)", path=self.src.path)
            t = self.tensors[vi.name]
            if self.channels_last and len(t.shape) >= 3:
                from mwconv.layers.onnx_ops import OnnxTranspose
                r = len(t.shape)
                t = OnnxTranspose(perm=[0] + list(range(2, r)) + [1], name=self.name(vi, "nhwc"))(t)
            outputs.append(t)
        name = re.sub(r"[^A-Za-z0-9_]", "_", graph.name or "onnx_model") or "onnx_model"
        model = keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=name)
        plan = [(f"{layer.name}/{weight}", source, transform) for layer, weight, source, transform in self.assignments]
        return model, plan, sorted(self.attribute_constants)

    def _raise_unsupported(self, found, detail=False):
        listing = "; ".join(f"{op} ({', '.join(names)})" for op, names in sorted(found.items()))
        what = "unsupported operator uses" if detail else "unsupported operators"
        raise InputRejected(f"cannot rebuild this ONNX graph in Keras: {what}: {listing}. Pass --model (a Keras "
                            "model factory) with a rules file (--map) to import its initializers instead",
                            path=self.src.path, details={"unsupported": found, "supported": SUPPORTED})


def build_from_onnx(source, channels_last=False):
    """Return ``(model, plan, attribute_constants)``: the Keras model, the list of
    ``(target weight path, source tensor, transform)`` to fill it, and the
    constants consumed as attributes (shapes, pads)."""
    return GraphBuilder(source, channels_last).build()
