"""Small weightless (or constant-holding) layers for ONNX graph import.

Each is a Keras 3 layer written with ``keras.ops`` only and registered under
``mwconv``, so an imported model reloads in safe mode. Axes count the batch
axis as 0, as ONNX does.
"""

import keras
from keras import ops

from mwconv import _compat

register = keras.saving.register_keras_serializable(package="mwconv")


class _Configured(keras.layers.Layer):
    """Stores its constructor keywords as config."""

    _fields = ()

    def __init__(self, **kwargs):
        values = {k: kwargs.pop(k) for k in self._fields if k in kwargs}
        kwargs.setdefault("autocast", False)        # a float64 graph stays float64
        super().__init__(**kwargs)
        for k, v in values.items():
            setattr(self, k, v)

    def get_config(self):
        return {**super().get_config(), **{k: getattr(self, k, None) for k in self._fields}}


@register
class OnnxActivation(_Configured):
    _fields = ("kind", "alpha", "gamma")

    def call(self, x):
        kind, alpha = self.kind, self.alpha
        if kind == "Relu":
            return ops.relu(x)
        if kind == "LeakyRelu":
            return ops.where(x >= 0, x, x * alpha)
        if kind == "Elu":
            return ops.where(x > 0, x, alpha * (ops.exp(x) - 1.0))
        if kind == "Selu":
            return self.gamma * ops.where(x > 0, x, alpha * (ops.exp(x) - 1.0))
        if kind == "Sigmoid":
            return ops.sigmoid(x)
        if kind == "Tanh":
            return ops.tanh(x)
        if kind == "Softplus":
            return ops.softplus(x)
        if kind == "Softsign":
            return x / (1.0 + ops.abs(x))
        if kind == "HardSigmoid":
            return ops.clip(alpha * x + self.gamma, 0.0, 1.0)
        if kind == "HardSwish":
            return x * ops.clip(x / 6.0 + 0.5, 0.0, 1.0)
        if kind == "Gelu":
            return ops.gelu(x, approximate=bool(alpha))
        raise ValueError(f"OnnxActivation: unknown kind {kind!r}")


@register
class OnnxSoftmax(_Configured):
    """Softmax/LogSoftmax along ``axis``; ``legacy`` (opset < 13) flattens from ``axis`` first."""

    _fields = ("axis", "log", "legacy")

    def call(self, x):
        fn = ops.log_softmax if self.log else ops.softmax
        if not self.legacy:
            return fn(x, axis=self.axis)
        shape = ops.shape(x)
        flat = ops.reshape(x, [shape[i] for i in range(self.axis)] + [-1])
        return ops.reshape(fn(flat, axis=-1), shape)


@register
class OnnxTranspose(_Configured):
    """``known`` (optional): static sizes of the input, batch axis included, for
    transposes that move the batch axis (Keras only knows the other sizes)."""

    _fields = ("perm", "known")

    def call(self, x):
        return ops.transpose(x, self.perm)

    def compute_output_spec(self, x):
        shape = list(x.shape)
        if getattr(self, "known", None):
            shape = [k if k is not None else s for k, s in zip(self.known, shape)]
        return keras.KerasTensor([shape[p] for p in self.perm], dtype=x.dtype)


@register
class OnnxReshape(_Configured):
    """Reshape to ``shape`` (without the batch axis, which is kept; with ``full``,
    the whole shape, batch axis included)."""

    _fields = ("shape", "full")

    def call(self, x):
        if getattr(self, "full", None):
            return ops.reshape(x, list(self.shape))
        return ops.reshape(x, [ops.shape(x)[0]] + list(self.shape))


@register
class OnnxPad(_Configured):
    """``pads``: [(before, after)] for every axis after the batch; ``mode``: constant, reflect
    or edge (repeat the border values)."""

    _fields = ("pads", "mode", "value")

    def call(self, x):
        widths = [(0, 0)] + [tuple(p) for p in self.pads]
        if self.mode == "constant":
            return ops.pad(x, widths, mode="constant", constant_values=self.value)
        if self.mode == "edge":
            for axis, (before, after) in enumerate(widths):
                if before or after:
                    first = ops.take(x, [0] * before, axis=axis)
                    last = ops.take(x, [x.shape[axis] - 1 if x.shape[axis] else -1] * after, axis=axis)
                    x = ops.concatenate([first, x, last], axis=axis)
            return x
        return ops.pad(x, widths, mode=self.mode)


@register
class OnnxCrop(_Configured):
    """Remove ``crops`` [(before, after)] from every axis after the batch."""

    _fields = ("crops",)

    def call(self, x):
        shape = ops.shape(x)
        index = [slice(None)]
        for axis, (before, after) in enumerate(self.crops, start=1):
            index.append(slice(before, shape[axis] - after))
        return x[tuple(index)]


@register
class OnnxGlobalAveragePool(keras.layers.Layer):
    def call(self, x):
        return ops.mean(x, axis=tuple(range(2, len(x.shape))), keepdims=True)


BINARY = {"Add": _compat.add, "Sub": ops.subtract, "Mul": ops.multiply, "Div": ops.divide, "MatMul": ops.matmul,
          "Pow": ops.power, "Max": ops.maximum, "Min": ops.minimum, "Equal": ops.equal, "Less": ops.less,
          "Greater": ops.greater, "LessOrEqual": ops.less_equal, "GreaterOrEqual": ops.greater_equal,
          "And": ops.logical_and, "Or": ops.logical_or, "Xor": ops.logical_xor}


@register
class OnnxBinary(_Configured):
    """An elementwise operator (or MatMul) of two graph tensors, ONNX broadcasting."""

    _fields = ("op",)

    def call(self, inputs):
        a, b = inputs
        return BINARY[self.op](a, b)


@register
class OnnxScale(_Configured):
    _fields = ("factor",)

    def call(self, x):
        return x * self.factor


@register
class ConstantArithmetic(_Configured):
    """``x (op) c`` (or ``c (op) x`` with ``reverse``) with ``c`` a frozen weight
    of shape ``constant_shape``, scaled by ``scale``."""

    _fields = ("op", "constant_shape", "reverse", "scale", "constant_dtype")

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=tuple(self.constant_shape), initializer="zeros",
                                        dtype=getattr(self, "constant_dtype", None) or None, trainable=False)

    def call(self, x):
        c = ops.convert_to_tensor(self.constant)
        c = c * self.scale if self.scale != 1.0 else c
        a, b = (c, x) if self.reverse else (x, c)
        return BINARY[self.op](a, b)


UNARY = {"Erf": ops.erf, "Sqrt": ops.sqrt, "Neg": ops.negative, "Abs": ops.abs, "Exp": ops.exp, "Log": ops.log,
         "Reciprocal": ops.reciprocal, "Floor": ops.floor, "Ceil": ops.ceil, "Sin": ops.sin, "Cos": ops.cos,
         "Not": ops.logical_not, "Sign": ops.sign, "Round": ops.round}


@register
class OnnxUnary(_Configured):
    """An elementwise function of one tensor (``kind``: an ONNX op type)."""

    _fields = ("kind",)

    def call(self, x):
        return UNARY[self.kind](x)


@register
class OnnxClip(_Configured):
    _fields = ("low", "high")

    def call(self, x):
        if self.low is not None:
            x = ops.maximum(x, ops.cast(self.low, x.dtype))
        if self.high is not None:
            x = ops.minimum(x, ops.cast(self.high, x.dtype))
        return x


@register
class OnnxCast(_Configured):
    _fields = ("to",)

    def call(self, x):
        return ops.cast(x, self.to)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=self.to)


@register
class OnnxWhere(_Configured):
    def call(self, inputs):
        condition, a, b = inputs
        return ops.where(condition, a, b)


@register
class OnnxReduce(_Configured):
    """ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp over ``axes`` (all when None)."""

    _fields = ("kind", "axes", "keepdims")
    KINDS = {"ReduceMean": ops.mean, "ReduceSum": ops.sum, "ReduceMax": ops.max, "ReduceMin": ops.min,
             "ReduceProd": ops.prod,
             "ReduceL1": lambda x, axis, keepdims: ops.sum(ops.abs(x), axis=axis, keepdims=keepdims),
             "ReduceL2": lambda x, axis, keepdims: ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=keepdims)),
             "ReduceSumSquare": lambda x, axis, keepdims: ops.sum(ops.square(x), axis=axis, keepdims=keepdims),
             "ReduceLogSum": lambda x, axis, keepdims: ops.log(ops.sum(x, axis=axis, keepdims=keepdims)),
             "ReduceLogSumExp": ops.logsumexp}

    def call(self, x):
        axes = tuple(self.axes) if self.axes is not None else None
        return self.KINDS[self.kind](x, axis=axes, keepdims=bool(self.keepdims))


@register
class OnnxGather(_Configured):
    """Take ``indices`` (an int: the axis goes; a nested list: it becomes their shape) along ``axis``."""

    _fields = ("indices", "axis")

    def call(self, x):
        return ops.take(x, ops.convert_to_tensor(self.indices, dtype="int32"), axis=self.axis)


@register
class OnnxSlice(_Configured):
    """``slices``: [axis, start, stop, step] per sliced axis (stop may be None)."""

    _fields = ("slices",)

    def call(self, x):
        index = [slice(None)] * len(x.shape)
        for axis, start, stop, step in self.slices:
            index[axis] = slice(start, stop, step)
        return x[tuple(index)]


@register
class OnnxAxes(_Configured):
    """Squeeze or Unsqueeze ``axes`` (of the output for Unsqueeze, as ONNX counts them)."""

    _fields = ("kind", "axes")

    def call(self, x):
        if self.kind == "Squeeze":
            return ops.squeeze(x, axis=tuple(self.axes))
        for axis in sorted(self.axes):
            x = ops.expand_dims(x, axis)
        return x


@register
class OnnxExpand(_Configured):
    """Broadcast to ``shape`` (ONNX Expand: both ways, as in numpy). Called on
    ``[x, reference]``, a -1 in ``shape`` takes the reference's batch size."""

    _fields = ("shape",)

    def call(self, x):
        shape = list(self.shape)
        if isinstance(x, (list, tuple)):
            x, reference = x
            shape = [ops.shape(reference)[0] if s == -1 else s for s in shape]
        return x * ops.ones(shape, dtype=x.dtype)


@register
class OnnxSplit(_Configured):
    """Split along ``axis`` into pieces of ``sizes``; returns a list."""

    _fields = ("axis", "sizes")

    def call(self, x):
        out, start = [], 0
        for size in self.sizes:
            index = [slice(None)] * len(x.shape)
            index[self.axis] = slice(start, start + size)
            out.append(x[tuple(index)])
            start += size
        return out


@register
class OnnxConstant(_Configured):
    """Outputs its frozen weight ``constant`` (its input only places it in the graph)."""

    _fields = ("constant_shape", "constant_dtype")

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=tuple(self.constant_shape), initializer="zeros",
                                        dtype=self.constant_dtype, trainable=False)

    def call(self, x):
        return ops.convert_to_tensor(self.constant)

    def compute_output_spec(self, x):
        return keras.KerasTensor(tuple(self.constant_shape), dtype=self.constant_dtype)


@register
class OnnxGemm(_Configured):
    """``alpha * A' @ B' + beta * C`` of graph tensors (``[A, B]`` or ``[A, B, C]``)."""

    _fields = ("trans_a", "trans_b", "alpha", "beta")

    def call(self, inputs):
        a, b = inputs[0], inputs[1]
        a = ops.transpose(a) if self.trans_a else a
        b = ops.transpose(b) if self.trans_b else b
        y = ops.matmul(a, b) * self.alpha
        return y + inputs[2] * self.beta if len(inputs) > 2 else y


@register
class OnnxTile(_Configured):
    _fields = ("repeats",)

    def call(self, x):
        return ops.tile(x, list(self.repeats))


@register
class OnnxDilatedMaxPool(_Configured):
    """Max pooling with dilations (channels-last, padded already): the maximum of one strided
    slice per kernel offset, since Keras pools have no dilation."""

    _fields = ("kernel", "strides", "dilations")

    def call(self, x):
        import itertools
        sizes = x.shape[1:-1]
        outs = [(size - (k - 1) * d - 1) // s + 1 for size, k, s, d in zip(sizes, self.kernel, self.strides,
                                                                              self.dilations)]
        result = None
        for offset in itertools.product(*(range(k) for k in self.kernel)):
            index = [slice(None)]
            for o, d, s, count in zip(offset, self.dilations, self.strides, outs):
                index.append(slice(o * d, o * d + (count - 1) * s + 1, s))
            part = x[tuple(index + [slice(None)])]
            result = part if result is None else ops.maximum(result, part)
        return result
