"""ONNX ``AveragePool`` with ``count_include_pad=0`` over padding (PoolFormer, PyTorch's
``count_include_pad=False``): each window's sum divided by the number of input elements it
covers, padding and ``ceil_mode``'s extra end not counted. Channels-last inside."""

import keras
from keras import ops

register = keras.saving.register_keras_serializable(package="mwconv")


@register
class OnnxExcludePadAveragePool(keras.layers.Layer):
    """``pads``: [(before, after)] per spatial axis of the NHWC input."""

    def __init__(self, pool_size, strides, pads, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides = [int(k) for k in pool_size], [int(s) for s in strides]
        self.pads = [[int(b), int(e)] for b, e in pads]

    def _pool(self, x):
        n = len(self.pool_size)
        x = ops.pad(x, [[0, 0]] + self.pads + [[0, 0]])
        return ops.average_pool(x, tuple(self.pool_size), tuple(self.strides), padding="valid") if n else x

    def call(self, x):
        covered = self._pool(ops.ones_like(x[..., :1]))      # the share of each window inside the input
        return ops.divide(self._pool(x), covered)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for i, (k, s, (b, e)) in enumerate(zip(self.pool_size, self.strides, self.pads)):
            if shape[i + 1] is not None:
                shape[i + 1] = (shape[i + 1] + b + e - k) // s + 1
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "pads": self.pads}
