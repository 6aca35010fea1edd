"""ONNX ``Resize`` and ``Upsample`` on static spatial sizes, as onnxruntime computes them.

Each resized axis is separable: every output position reads a few input positions with fixed
weights. ``axis_weights`` works those out once, in NumPy, from the op's attributes (the mode,
``coordinate_transformation_mode``, ``nearest_mode``, ``cubic_coeff_a``, ``exclude_outside``)
and the sizes; the layer then gathers (nearest: the values themselves, so an Inf stays an Inf)
or applies the weights as a matrix (linear, cubic) along each axis. The layer works in the
graph's own layout (NCHW), on the axes it is given.
"""

import math

import keras
import numpy as np
from keras import ops

register = keras.saving.register_keras_serializable(package="mwconv")

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MODES = ("nearest", "linear", "cubic")


def original(x, in_len, out_len, scale, mode):
    """The input coordinate of output coordinates ``x``, as ONNX defines it, in float32 as
    onnxruntime computes it (where a coordinate falls exactly between two pixels, float64
    would round the other way: (1 + 0.5) / 0.6 - 0.5 is 2 in float32, 1.9999999999999996 in
    float64)."""
    f = np.float32
    x, in_len, out_len, scale = x.astype(f), f(in_len), f(out_len), f(scale)
    half, one = f(0.5), f(1)
    if mode == "half_pixel":
        return (x + half) / scale - half
    if mode == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        center = in_len / f(2)
        return center * (one - adjustment) + (x + half) / scale - half
    if mode == "pytorch_half_pixel":
        return (x + half) / scale - half if out_len > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (in_len - one) / (out_len - one) if out_len > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / scale
    raise ValueError(f"coordinate_transformation_mode {mode!r}")


def _nearest(xo, mode):
    if mode == "round_prefer_floor":
        return np.ceil(xo - 0.5)
    if mode == "round_prefer_ceil":
        return np.floor(xo + 0.5)
    if mode == "floor":
        return np.floor(xo)
    return np.ceil(xo)


def _cubic(s, a):
    """The four weights of offsets -1, 0, 1, 2 at fraction ``s`` (Keys, coefficient ``a``)."""
    def w(d):
        d = np.abs(d)
        return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                        np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    return np.stack([w(s + 1), w(s), w(1 - s), w(2 - s)], axis=-1)


def axis_weights(in_len, out_len, scale, mode="nearest", coordinate="half_pixel", nearest="round_prefer_floor",
                 cubic_a=-0.75, exclude_outside=False):
    """``(indices, None)`` for nearest, else ``(None, matrix (out_len, in_len))``."""
    xo = original(np.arange(out_len), in_len, out_len, scale, coordinate)
    if mode == "nearest":
        return np.clip(_nearest(xo, nearest), 0, in_len - 1).astype(np.int32), None
    xo = xo.astype(np.float64)
    matrix = np.zeros((out_len, in_len), np.float64)
    rows = np.arange(out_len)
    if mode == "linear":
        xo = np.clip(xo, 0, in_len - 1)
        low = np.floor(xo).astype(np.int64)
        frac = xo - low
        high = np.minimum(low + 1, in_len - 1)
        np.add.at(matrix, (rows, low), 1 - frac)
        np.add.at(matrix, (rows, high), frac)
        return None, matrix
    base = np.floor(xo).astype(np.int64)
    weights = _cubic(xo - base, cubic_a)
    for k, offset in enumerate((-1, 0, 1, 2)):
        index = base + offset
        inside = (index >= 0) & (index < in_len)
        w = weights[:, k] * (inside if exclude_outside else 1.0)
        np.add.at(matrix, (rows, np.clip(index, 0, in_len - 1)), w)
    if exclude_outside:
        matrix /= matrix.sum(axis=1, keepdims=True)
    return None, matrix


@register
class OnnxResize(keras.layers.Layer):
    """Resize ``axes`` of the input from ``in_sizes`` to ``out_sizes`` (``scales`` as the op
    gave them, for the coordinate transform)."""

    def __init__(self, axes, in_sizes, out_sizes, scales, mode="nearest", coordinate="half_pixel",
                 nearest="round_prefer_floor", cubic_a=-0.75, exclude_outside=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES or coordinate not in COORDINATE_MODES or nearest not in NEAREST_MODES:
            raise ValueError(f"OnnxResize: mode {mode!r}, coordinate {coordinate!r}, nearest {nearest!r}")
        self.axes, self.in_sizes, self.out_sizes = [int(a) for a in axes], [int(s) for s in in_sizes], \
            [int(s) for s in out_sizes]
        self.scales = [float(s) for s in scales]
        self.mode, self.coordinate, self.nearest = mode, coordinate, nearest
        self.cubic_a, self.exclude_outside = float(cubic_a), bool(exclude_outside)
        self._tables = [axis_weights(i, o, s, mode, coordinate, nearest, self.cubic_a, self.exclude_outside)
                        for i, o, s in zip(self.in_sizes, self.out_sizes, self.scales)]

    def call(self, x):
        for axis, (indices, matrix) in zip(self.axes, self._tables):
            if indices is not None:
                x = ops.take(x, ops.convert_to_tensor(indices), axis=axis)
                continue
            dtype = keras.backend.standardize_dtype(x.dtype)
            m = ops.convert_to_tensor(matrix.astype(dtype if np.dtype(dtype).kind == "f" else np.float32))
            moved = ops.moveaxis(x, axis, -1)                     # (..., in) @ (in, out)
            x = ops.moveaxis(ops.matmul(moved, ops.transpose(m)), -1, axis)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis, size in zip(self.axes, self.out_sizes):
            shape[axis] = size
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "in_sizes": self.in_sizes, "out_sizes": self.out_sizes,
                "scales": self.scales, "mode": self.mode, "coordinate": self.coordinate, "nearest": self.nearest,
                "cubic_a": self.cubic_a, "exclude_outside": self.exclude_outside}


def output_size(in_len, scale):
    """ONNX's output length for a scale: ``floor(in * scale)`` (a float32 scale, as stored)."""
    return int(math.floor(in_len * float(np.float32(scale)) + 1e-9))
