"""Small weightless (or constant-holding) layers for ONNX graph import.

Each is a Keras 3 layer written with ``keras.ops`` only and registered under
``mwconv``, so an imported model reloads in safe mode. Axes count the batch
axis as 0, as ONNX does.
"""

import keras
from keras import ops

register = keras.saving.register_keras_serializable(package="mwconv")


class _Configured(keras.layers.Layer):
    """Stores its constructor keywords as config."""

    _fields = ()

    def __init__(self, **kwargs):
        values = {k: kwargs.pop(k) for k in self._fields if k in kwargs}
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
    """Reshape to ``shape`` (without the batch axis, which is kept)."""

    _fields = ("shape",)

    def call(self, x):
        return ops.reshape(x, [ops.shape(x)[0]] + list(self.shape))


@register
class OnnxPad(_Configured):
    """``pads``: [(before, after)] for every axis after the batch; ``mode``: constant or reflect."""

    _fields = ("pads", "mode", "value")

    def call(self, x):
        widths = [(0, 0)] + [tuple(p) for p in self.pads]
        if self.mode == "constant":
            return ops.pad(x, widths, mode="constant", constant_values=self.value)
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


@register
class OnnxBinary(_Configured):
    """Add/Sub/Mul/Div/MatMul of two graph tensors."""

    _fields = ("op",)

    def call(self, inputs):
        a, b = inputs
        return {"Add": ops.add, "Sub": ops.subtract, "Mul": ops.multiply, "Div": ops.divide,
                "MatMul": ops.matmul}[self.op](a, b)


@register
class OnnxScale(_Configured):
    _fields = ("factor",)

    def call(self, x):
        return x * self.factor


@register
class ConstantArithmetic(_Configured):
    """``x (op) c`` (or ``c (op) x`` with ``reverse``) with ``c`` a frozen weight
    of shape ``constant_shape``, scaled by ``scale``."""

    _fields = ("op", "constant_shape", "reverse", "scale")

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=tuple(self.constant_shape), initializer="zeros",
                                        trainable=False)

    def call(self, x):
        c = self.constant * self.scale if self.scale != 1.0 else self.constant
        a, b = (c, x) if self.reverse else (x, c)
        return {"Add": ops.add, "Sub": ops.subtract, "Mul": ops.multiply, "Div": ops.divide}[self.op](a, b)
