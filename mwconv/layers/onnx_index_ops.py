"""ONNX ops that contract or index by other tensors: ``Einsum`` (MaxViT's attention),
``TopK`` (detection post-processing), ``GatherND`` and ``ScatterND`` (SSD's box selection,
position ids). Constant operands are the layer's own frozen weights (``constant_<i>``)."""

import keras
import numpy as np
from keras import ops

from mwconv import _compat

register = keras.saving.register_keras_serializable(package="mwconv")


@register
class OnnxEinsum(keras.layers.Layer):
    """``einsum(equation, *operands)``; ``constants``: ``[[position, shape, dtype], ...]`` of
    the operands held as weights, the graph tensors filling the other positions in order."""

    def __init__(self, equation, constants=(), **kwargs):
        super().__init__(**kwargs)
        self.equation = str(equation)
        self.constants = [[int(p), [int(d) for d in s], str(t)] for p, s, t in constants]

    def build(self, input_shape):
        self._held = [self.add_weight(name=f"constant_{i}", shape=tuple(shape), dtype=dtype, initializer="zeros")
                      for i, (_, shape, dtype) in enumerate(self.constants)]

    def _operands(self, inputs):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        count = len(tensors) + len(self.constants)
        held = {p: v for (p, _, _), v in zip(self.constants, self._held)}
        return [held[i] if i in held else tensors.pop(0) for i in range(count)]

    def call(self, inputs):
        return ops.einsum(self.equation, *self._operands(inputs))

    def get_config(self):
        return {**super().get_config(), "equation": self.equation, "constants": self.constants}


@register
class OnnxTopK(keras.layers.Layer):
    """The ``k`` largest (or smallest) values along ``axis`` and their int64 indices, sorted."""

    def __init__(self, k, axis=-1, largest=True, **kwargs):
        super().__init__(**kwargs)
        self.k, self.axis, self.largest = int(k), int(axis), bool(largest)

    def call(self, x):
        moved = ops.moveaxis(x, self.axis, -1)
        values, indices = ops.top_k(moved if self.largest else ops.negative(moved), self.k, sorted=True)
        if not self.largest:
            values = ops.negative(values)
        return [ops.moveaxis(values, -1, self.axis), ops.cast(ops.moveaxis(indices, -1, self.axis), "int64")]

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self.axis] = self.k
        return [tuple(shape), tuple(shape)]

    def get_config(self):
        return {**super().get_config(), "k": self.k, "axis": self.axis, "largest": self.largest}


def _linear(indices, dims):
    """Row-major offsets of the index tuples on the last axis of ``indices`` into ``dims``
    (negative indices count from the end)."""
    indices = ops.cast(indices, "int32")
    strides = np.cumprod([1, *dims[::-1]])[:-1][::-1].astype("int32")
    dims_t = np.asarray(dims, "int32")
    indices = ops.where(ops.less(indices, 0), _compat.add(indices, dims_t), indices)
    return ops.sum(ops.multiply(indices, strides), axis=-1)


@register
class OnnxGatherND(keras.layers.Layer):
    """ONNX ``GatherND`` with ``batch_dims`` leading axes shared by ``data`` and ``indices``:
    each index tuple on ``indices``' last axis picks a slice of ``data``."""

    def __init__(self, batch_dims=0, **kwargs):
        super().__init__(**kwargs)
        self.batch_dims = int(batch_dims)

    def call(self, inputs):
        data, indices = inputs
        b, m = self.batch_dims, indices.shape[-1]
        shape = ops.shape(data)
        indexed = [int(d) for d in data.shape[b:b + m]]
        rest = [int(d) for d in data.shape[b + m:]]
        batch = 1
        for d in range(b):
            batch = batch * shape[d]
        flat = ops.reshape(data, (batch * int(np.prod(indexed)), *rest))
        idx = ops.reshape(indices, (batch, -1, m))
        offsets = _compat.add(_linear(idx, indexed),
                          ops.expand_dims(ops.arange(batch, dtype="int32") * int(np.prod(indexed)), -1))
        picked = ops.take(flat, ops.reshape(offsets, (-1,)), axis=0)
        lead = [shape[d] for d in range(b)] + [int(d) if d is not None else ops.shape(indices)[i + b]
                                               for i, d in enumerate(indices.shape[b:-1])]
        return ops.reshape(picked, (*lead, *rest))

    def get_config(self):
        return {**super().get_config(), "batch_dims": self.batch_dims}


@register
class OnnxScatterND(keras.layers.Layer):
    """ONNX ``ScatterND`` (``reduction="none"``): ``data`` with the slices that ``indices`` name
    replaced by ``updates``."""

    def call(self, inputs):
        data, indices, updates = inputs
        m = indices.shape[-1]
        dims = [int(d) for d in data.shape[:m]]
        rest = [int(d) for d in data.shape[m:]]
        flat = ops.reshape(data, (int(np.prod(dims)), *rest))
        offsets = ops.reshape(_linear(indices, dims), (-1, 1))
        values = ops.reshape(updates, (-1, *rest))
        return ops.reshape(ops.scatter_update(flat, offsets, ops.cast(values, flat.dtype)), ops.shape(data))
