"""Layers for what tf.keras 2.x models record outside Keras's own layers.

* ``TFOp``: a TensorFlow op that tf-keras stored as a ``TFOpLambda`` or
  ``SlicingOpLambda`` layer (``x + 3.0`` in MobileNetV3's hard-swish, a
  residual add in ConvNeXt), run with ``keras.ops``. Only the ops in ``OPS``
  are known; the file names an op, never code.
* ``LayerScale``: the per-channel scale of tf-keras's ConvNeXt, mixable.
"""

import keras
import numpy as np
from keras import ops

from mwconv import _compat

from mwconv.errors import InputRejected
from mwconv.layers.mixin import MixedWeightsMixin

register = keras.saving.register_keras_serializable(package="mwconv")

OPS = {}   # TF function name (as tf-keras records it) -> (function, first argument, takes a list)


def _op(*names, first="x", listed=False):
    def deco(fn):
        for name in names:
            OPS[name] = (fn, first, listed)
        return fn
    return deco


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _const(value):
    return np.asarray(value, "float32") if isinstance(value, list) else value


_op("__operators__.add", "math.add")(lambda x, y: _compat.add(x, _const(y)))
_op("math.subtract")(lambda x, y: ops.subtract(x, _const(y)))
_op("math.multiply")(lambda x, y: ops.multiply(x, _const(y)))
_op("math.truediv", "math.divide")(lambda x, y: ops.divide(x, _const(y)))
_op("math.maximum")(lambda x, y: ops.maximum(x, _const(y)))
_op("math.minimum")(lambda x, y: ops.minimum(x, _const(y)))
_op("math.pow")(lambda x, y: ops.power(x, _const(y)))
_op("math.squared_difference")(lambda x, y: ops.square(ops.subtract(x, _const(y))))
for _name, _fn in (("negative", ops.negative), ("abs", ops.abs), ("exp", ops.exp), ("log", ops.log),
                   ("sqrt", ops.sqrt), ("rsqrt", ops.rsqrt), ("square", ops.square), ("tanh", ops.tanh),
                   ("sigmoid", ops.sigmoid), ("sin", ops.sin), ("cos", ops.cos), ("erf", ops.erf)):
    _op(f"math.{_name}")(lambda x, _f=_fn: _f(x))
_op("nn.relu", first="features")(lambda features: ops.relu(features))
_op("nn.relu6", first="features")(lambda features: ops.relu6(features))
_op("nn.silu", "nn.swish", first="features")(lambda features, beta=1.0: ops.multiply(
    features, ops.sigmoid(ops.multiply(features, beta))))
_op("nn.gelu", first="features")(lambda features, approximate=False: ops.gelu(features, approximate))
_op("nn.softmax", first="logits")(lambda logits, axis=None: ops.softmax(logits, -1 if axis is None else axis))
_op("identity", first="input")(lambda input: ops.copy(input))
_op("cast")(lambda x, dtype: ops.cast(x, dtype))
_op("clip_by_value", first="t")(lambda t, clip_value_min, clip_value_max: ops.clip(t, clip_value_min,
                                                                                       clip_value_max))
for _name, _fn in (("mean", ops.mean), ("sum", ops.sum), ("max", ops.max), ("min", ops.min), ("prod", ops.prod)):
    _op(f"math.reduce_{_name}", f"reduce_{_name}", first="input_tensor")(
        lambda input_tensor, axis=None, keepdims=False, _f=_fn: _f(input_tensor, _axis(axis), keepdims))
_op("reshape", first="tensor")(lambda tensor, shape: ops.reshape(tensor, tuple(shape)))
_op("compat.v1.transpose", "transpose", first="a")(
    lambda a, perm=None, conjugate=False: ops.transpose(a, _axis(perm)))
_op("linalg.matrix_transpose", "linalg.adjoint", first="a")(      # the last two axes only, at any rank
    lambda a, conjugate=False: ops.swapaxes(a, -1, -2))
_op("expand_dims", first="input")(lambda input, axis: ops.expand_dims(input, axis))
_op("compat.v1.squeeze", "squeeze", first="input")(lambda input, axis=None: ops.squeeze(input, _axis(axis)))
_op("concat", first="values", listed=True)(lambda values, axis: ops.concatenate(values, axis))
_op("stack", first="values", listed=True)(lambda values, axis=0: ops.stack(values, axis))
_op("math.add_n", first="inputs", listed=True)(lambda inputs: sum(inputs[1:], inputs[0]))
_op("linalg.matmul", first="a")(lambda a, b, transpose_a=False, transpose_b=False: ops.matmul(
    ops.swapaxes(a, -1, -2) if transpose_a else a, ops.swapaxes(b, -1, -2) if transpose_b else b))


def _shape(input, out_type="int32"):
    """``tf.shape``: the shape as a 1-D tensor, each axis unknown until run time read then."""
    dims = ops.shape(input)
    if all(isinstance(d, int) for d in dims):
        return ops.convert_to_tensor(np.asarray(dims, out_type))
    return ops.stack([ops.cast(d, out_type) for d in dims])


_op("compat.v1.shape", "shape", first="input")(_shape)
_op("range", first="start")(lambda start, limit=None, delta=1, dtype=None: ops.arange(
    start, limit, delta, dtype=dtype))


def _slice(spec):
    if isinstance(spec, dict) and set(spec) <= {"start", "stop", "step"}:
        return slice(spec.get("start"), spec.get("stop"), spec.get("step"))
    if spec == "...":
        return Ellipsis
    return spec


def _getitem(tensor, slice_spec):
    specs = slice_spec if isinstance(slice_spec, list) else [slice_spec]
    return tensor[tuple(_slice(s) for s in specs)]


_op("__operators__.getitem", first="tensor")(_getitem)


def tf_op_entry(name, function, first_count, tensor_kwargs, constants, path=None):
    """The Keras 3 config entry of a TFOp layer, or a refusal naming the op."""
    if function not in OPS:
        raise InputRejected(f"layer '{name}' is the TensorFlow op tf.{function}, which mwconv does not translate "
                            f"(known: {len(OPS)} math, activation, reshape and slice ops; see the README); "
                            "pass --model", path=path)
    _, _, listed = OPS[function]
    if first_count != 1 and not listed:
        raise InputRejected(f"layer '{name}' (tf.{function}) takes {first_count} tensors as its first argument; "
                            "mwconv cannot translate that call", path=path)
    config = {"name": name, "function": function, "first_count": first_count,
              "tensor_kwargs": list(tensor_kwargs), "constants": dict(constants)}
    return {"module": None, "class_name": "TFOp", "registered_name": "mwconv>TFOp", "config": config}


@register
class TFOp(keras.layers.Layer):
    """One TensorFlow op from a tf.keras 2.x model, computed with ``keras.ops``."""

    def __init__(self, function, first_count=1, tensor_kwargs=(), constants=None, **kwargs):
        super().__init__(**kwargs)
        if function not in OPS:
            raise ValueError(f"TFOp does not know the op '{function}'. Known: {sorted(OPS)}")
        self.function, self.first_count = function, int(first_count)
        self.tensor_kwargs, self.constants = list(tensor_kwargs), dict(constants or {})

    def call(self, inputs):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        fn, first, listed = OPS[self.function]
        kwargs = dict(self.constants)
        head = tensors[:self.first_count]
        kwargs[first] = head if listed else head[0]
        kwargs.update(zip(self.tensor_kwargs, tensors[self.first_count:]))
        return fn(**kwargs)

    def get_config(self):
        return {**super().get_config(), "function": self.function, "first_count": self.first_count,
                "tensor_kwargs": self.tensor_kwargs, "constants": self.constants}


@register
class LayerScale(MixedWeightsMixin, keras.layers.Layer):
    """``x * gamma`` with one learned scale per channel (tf-keras's ConvNeXt)."""

    def __init__(self, init_values=1e-6, projection_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.init_values, self.projection_dim = float(init_values), projection_dim

    def build(self, input_shape):
        dim = self.projection_dim or input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(dim,),
                                     initializer=keras.initializers.Constant(self.init_values))
        super().build(input_shape)

    def call(self, x):
        return ops.multiply(x, self.gamma)

    def get_config(self):
        return {**super().get_config(), "init_values": self.init_values, "projection_dim": self.projection_dim}
