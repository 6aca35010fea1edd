"""ONNX ``CumSum``: the running sum along one axis, ``exclusive`` (each position leaves
itself out) and ``reverse`` (from the end), as RoBERTa's position ids compute it."""

import keras
from keras import ops

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
