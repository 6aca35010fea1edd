"""ONNX ops along one axis: ``CumSum`` (the running sum, ``exclusive``: each position leaves
itself out, ``reverse``: from the end) and ``GatherElements`` (``take_along_axis``), as
RoBERTa's embeddings compute position and token-type ids."""

import keras
from keras import ops

from mwconv import _compat

register = keras.saving.register_keras_serializable(package="mwconv")


@register
class OnnxCumSum(keras.layers.Layer):
    def __init__(self, axis, exclusive=False, reverse=False, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.exclusive, self.reverse = int(axis), bool(exclusive), bool(reverse)

    def call(self, x):
        if self.reverse:
            x = ops.flip(x, axis=self.axis)
        y = ops.cumsum(x, axis=self.axis)
        if self.exclusive:          # shifted by one, a zero first: no subtraction, no rounding
            length = x.shape[self.axis]
            head = ops.zeros_like(ops.take(x, ops.arange(0, 1), axis=self.axis))
            y = ops.concatenate([head, ops.take(y, ops.arange(0, (length or ops.shape(x)[self.axis]) - 1),
                                                axis=self.axis)], axis=self.axis)
        return ops.flip(y, axis=self.axis) if self.reverse else y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "exclusive": self.exclusive, "reverse": self.reverse}


@register
class OnnxGatherElements(keras.layers.Layer):
    """``data`` indexed by ``indices`` (same rank) along ``axis``; negative indices count from the end."""

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        data, indices = inputs
        indices = ops.cast(indices, "int32")
        size = ops.cast(ops.shape(data)[self.axis], "int32")
        indices = ops.where(ops.less(indices, 0), _compat.add(indices, size), indices)
        return ops.take_along_axis(data, indices, axis=self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
