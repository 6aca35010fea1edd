"""The seed article's three layers, written so they do what the article claims.

* ``FixedBiasLinear(units, bias_value=0.5)``: trainable kernel, frozen bias.
  The bias is a weight created in ``build()`` (not a raw ``tf.Variable``), so
  it is tracked, saved, and comes back as ``bias_value`` after reload.
* ``FrozenEmbedding(embedding_matrix)``: a pretrained, frozen table stored as a
  weight; the config keeps only its shape.
* ``CombinedTransformation(units, transformation_matrix)``: a trainable linear
  map, then a fixed matrix, then ReLU.
"""

import keras
import numpy as np
from keras import ops

register = keras.saving.register_keras_serializable(package="mwconv")


def _matrix(value, argument, cls):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{cls} expected `{argument}` to be a 2-D numeric matrix. "
                         f"Received: shape {arr.shape}, dtype {arr.dtype}.")
    return arr


def _positive_int(value, argument, cls):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{cls} expected `{argument}` to be a positive integer. Received: {argument}={value!r}")
    return int(value)


def _constant(arr):
    # np.array copies: the variable must never share memory with the caller's matrix
    return lambda shape, dtype=None: ops.cast(ops.convert_to_tensor(np.array(arr)), dtype)


@register
class FixedBiasLinear(keras.layers.Layer):
    """``x @ kernel + bias`` with a trainable kernel and a frozen bias of ``bias_value``."""

    def __init__(self, units, bias_value=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", "FixedBiasLinear")
        if not isinstance(bias_value, (int, float, np.floating, np.integer)) or isinstance(bias_value, bool):
            raise ValueError(f"FixedBiasLinear expected `bias_value` to be a number. Received: bias_value={bias_value!r}")
        self.bias_value = float(bias_value)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", trainable=True)
        self.bias = self.add_weight(name="bias", shape=(self.units,),
                                    initializer=keras.initializers.Constant(self.bias_value), trainable=False)

    def call(self, inputs):
        return ops.add(ops.matmul(inputs, self.kernel), self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "bias_value": self.bias_value}


@register
class FrozenEmbedding(keras.layers.Layer):
    """A pretrained embedding table, frozen. ``FrozenEmbedding(matrix)``; the
    config holds ``input_dim``/``output_dim``, the values are a weight."""

    def __init__(self, embedding_matrix=None, input_dim=None, output_dim=None, **kwargs):
        super().__init__(**kwargs)
        matrix = _matrix(embedding_matrix, "embedding_matrix", "FrozenEmbedding")
        if matrix is not None:
            if (input_dim, output_dim) not in ((None, None), matrix.shape):
                raise ValueError(f"FrozenEmbedding: embedding_matrix has shape {matrix.shape} but "
                                 f"input_dim={input_dim}, output_dim={output_dim}. Pass one or make them agree.")
            input_dim, output_dim = matrix.shape
        elif input_dim is None or output_dim is None:
            raise ValueError("FrozenEmbedding expected `embedding_matrix` (or input_dim and output_dim). "
                             "Received: none of them.")
        self.input_dim = _positive_int(input_dim, "input_dim", "FrozenEmbedding")
        self.output_dim = _positive_int(output_dim, "output_dim", "FrozenEmbedding")
        self._matrix = matrix

    def build(self, input_shape=None):
        init = _constant(self._matrix) if self._matrix is not None else "zeros"
        self.embeddings = self.add_weight(name="embeddings", shape=(self.input_dim, self.output_dim),
                                          initializer=init, trainable=False)

    def call(self, inputs):
        if ops.dtype(inputs) not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return ops.take(self.embeddings, inputs, axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}


@register
class CombinedTransformation(keras.layers.Layer):
    """``relu((x @ kernel) @ transformation)``: trainable ``kernel`` of shape
    ``(in, units)``, frozen ``transformation`` of shape ``(units, k)``."""

    def __init__(self, units, transformation_matrix=None, transformation_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", "CombinedTransformation")
        matrix = _matrix(transformation_matrix, "transformation_matrix", "CombinedTransformation")
        shape = tuple(matrix.shape) if matrix is not None else tuple(transformation_shape or ())
        if len(shape) != 2 or shape[0] != self.units:
            raise ValueError(
                f"CombinedTransformation expected `transformation_matrix` of shape (units, k) = ({self.units}, k). "
                f"Received: shape {shape}. Pass a matrix whose first dimension equals units={self.units}.")
        self.transformation_shape = shape
        self._matrix = matrix

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", trainable=True)
        init = _constant(self._matrix) if self._matrix is not None else "zeros"
        self.transformation = self.add_weight(name="transformation", shape=self.transformation_shape,
                                              initializer=init, trainable=False)

    def call(self, inputs):
        return ops.relu(ops.matmul(ops.matmul(inputs, self.kernel), self.transformation))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.transformation_shape[1],)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "transformation_shape": list(self.transformation_shape)}
