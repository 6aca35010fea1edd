"""What tf-keras 2.x computes that Keras 3 computes differently, or has no layer for.

The tf-keras translator (``mwconv.legacy``) rewrites a file's names to these so that an
imported model gives tf-keras's numbers, not those of a Keras 3 namesake:

* ``tf_keras_hard_sigmoid``: tf-keras's ``hard_sigmoid`` is ``clip(0.2 x + 0.5, 0, 1)``;
  Keras 3's is ``relu6(x + 3) / 6`` (at x = -2: 0.1 against 0.167). ``ConvLSTM1D/2D/3D``
  use it as their default ``recurrent_activation``.
* ``ThresholdedReLU``: ``x`` where ``x > theta``, else 0 (removed from Keras 3; its
  ``ReLU(threshold=...)`` differs at ``x == theta``).
* ``CustomScaleLayer``: ``inputs[0] + inputs[1] * scale``, defined inside
  ``tf_keras.applications.inception_resnet_v2``.
"""

import keras
from keras import ops

from mwconv import _compat

register = keras.saving.register_keras_serializable(package="mwconv")


@keras.saving.register_keras_serializable(package="mwconv", name="tf_keras_hard_sigmoid")
def tf_keras_hard_sigmoid(x):
    """tf-keras 2.x's ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)``."""
    x = ops.convert_to_tensor(x)
    return ops.clip(ops.add(ops.multiply(x, 0.2), 0.5), 0.0, 1.0)


@register
class ThresholdedReLU(keras.layers.Layer):
    """tf-keras's ThresholdedReLU: ``x`` where ``x > theta``, else 0."""

    def __init__(self, theta=1.0, **kwargs):
        super().__init__(**kwargs)
        if theta is None or float(theta) < 0:
            raise ValueError(f"theta must be a non-negative float, not {theta!r}")
        self.theta = float(theta)

    def call(self, x):
        return ops.where(ops.greater(x, ops.cast(self.theta, x.dtype)), x, ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "theta": self.theta}


@register
class CustomScaleLayer(keras.layers.Layer):
    """tf-keras InceptionResNetV2's residual scale: ``inputs[0] + inputs[1] * scale``."""

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return _compat.add(inputs[0], ops.multiply(inputs[1], self.scale))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
