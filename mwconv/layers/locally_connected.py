"""``LocallyConnected1D`` and ``LocallyConnected2D``: tf-keras 2.x's layers, which Keras 3
removed, computing tf-keras's numbers from tf-keras's weights, with a choice of frozen
weights (``frozen=["kernel"]``) like mwconv's mixed layers.

A locally connected layer is a convolution whose filters are not shared: every output
position has its own. tf-keras stores the kernel in one of three layouts (``implementation``),
and this layer keeps the one its config names, so a file's weights load as they are:

1. ``(output positions, kernel window x input channels, filters)``: each output position's
   window of the input, flattened in the data format's order, times its own matrix;
2. ``(input spatial..., channels, output spatial..., filters)`` (channels first:
   ``(channels, input spatial..., filters, output spatial...)``), a dense matrix masked to
   the windows;
3. the nonzero entries of that matrix only, in the order of ``conv_kernel_idxs``.

Which input positions feed an output position is tf-keras's rule
(``conv_utils.conv_connected_inputs``): ``[o*s, o*s + k)`` with ``padding="valid"``, the
window centred at ``o*s`` and clipped to the input with ``"same"``. The bias is
``(output positions..., filters)``; with channels first tf-keras adds it reshaped (not
transposed) to ``(filters, positions...)``, and so does this layer.
"""

import itertools

import keras
import numpy as np
from keras import ops

from mwconv import _compat
from mwconv.layers.mixin import MixedWeightsMixin

register = keras.saving.register_keras_serializable(package="mwconv")


def _tuple(value, rank, what):
    out = (value,) * rank if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != rank:
        raise ValueError(f"`{what}` should have {rank} entries. Received: {value!r}")
    return out


def _output_length(length, kernel, padding, stride):
    return (length - kernel) // stride + 1 if padding == "valid" else (length + stride - 1) // stride


def _connected(in_shape, kernel, position, strides, padding):
    """The input positions that feed output ``position`` (tf-keras's conv_connected_inputs)."""
    ranges = []
    for d, size in enumerate(in_shape):
        left = kernel[d] // 2
        center = position[d] * strides[d] + (left if padding == "valid" else 0)
        ranges.append(range(max(0, center - left), min(size, center - left + kernel[d])))
    return itertools.product(*ranges)


class _LocallyConnected(MixedWeightsMixin, keras.layers.Layer):
    rank = None

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, implementation=1, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = int(filters)
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size")
        self.strides = _tuple(strides, self.rank, "strides")
        self.padding = str(padding).lower()
        self.data_format = str(data_format or keras.config.image_data_format()).lower()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"`data_format` should be 'channels_last' or 'channels_first'. Received: {data_format!r}")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"`padding` should be 'valid' or 'same'. Received: {padding!r}")
        if implementation not in (1, 2, 3):
            raise ValueError(f"`implementation` should be 1, 2 or 3. Received: {implementation!r}")
        if implementation == 1 and self.padding != "valid":
            raise ValueError("implementation=1 supports padding='valid' only, as in tf-keras")
        self.implementation = implementation
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    @classmethod
    def _display_name(cls):
        return cls.__name__

    # -- shapes ----------------------------------------------------------------
    def _split(self, shape):
        """(spatial dims, channels) of an input or output shape without its batch axis."""
        shape = tuple(shape)
        return (shape[1:], shape[0]) if self.data_format == "channels_first" else (shape[:-1], shape[-1])

    def _join(self, spatial, channels):
        return (channels, *spatial) if self.data_format == "channels_first" else (*spatial, channels)

    def _flat_index(self, position, channel, spatial, channels):
        return int(np.ravel_multi_index(self._join(position, channel), self._join(spatial, channels)))

    def build(self, input_shape):
        in_spatial, in_channels = self._split(input_shape[1:])
        if in_channels is None or any(d is None for d in in_spatial):
            raise ValueError(f"{type(self).__name__} needs a fully defined input shape. Received: {input_shape}")
        self.in_spatial, self.in_channels = tuple(in_spatial), int(in_channels)
        self.out_spatial = tuple(_output_length(n, k, self.padding, s)
                                 for n, k, s in zip(in_spatial, self.kernel_size, self.strides))
        if min(self.out_spatial) <= 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': the input {input_shape} is too small for "
                             f"kernel_size={self.kernel_size}")
        positions = int(np.prod(self.out_spatial))
        window = int(np.prod(self.kernel_size)) * self.in_channels
        if self.implementation == 1:
            shape = (positions, window, self.filters)
        elif self.implementation == 2:
            shape = (*self._join(self.in_spatial, self.in_channels), *self._join(self.out_spatial, self.filters))
        else:
            self._pairs = self._kernel_pairs()
            shape = (len(self._pairs),)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight(name="bias", shape=(*self.out_spatial, self.filters), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint) \
            if self.use_bias else None
        self._build_indices()

    def _kernel_pairs(self):
        """``(output flat index, input flat index)`` of every connection, sorted (tf-keras's
        ``sorted(conv_kernel_idxs(...))``): the positions of implementation 3's kernel entries."""
        pairs = []
        for position in itertools.product(*(range(n) for n in self.out_spatial)):
            for source in _connected(self.in_spatial, self.kernel_size, position, self.strides, self.padding):
                for c in range(self.in_channels):
                    for f in range(self.filters):
                        pairs.append((self._flat_index(position, f, self.out_spatial, self.filters),
                                      self._flat_index(source, c, self.in_spatial, self.in_channels)))
        return sorted(pairs)

    def _build_indices(self):
        if self.implementation == 1:       # per output position, its window's flat input indices
            rows = []
            for position in itertools.product(*(range(n) for n in self.out_spatial)):
                offsets = [range(p * s, p * s + k) for p, s, k in zip(position, self.strides, self.kernel_size)]
                window = list(itertools.product(*offsets))
                if self.data_format == "channels_first":
                    rows.append([self._flat_index(w, c, self.in_spatial, self.in_channels)
                                 for c in range(self.in_channels) for w in window])
                else:
                    rows.append([self._flat_index(w, c, self.in_spatial, self.in_channels)
                                 for w in window for c in range(self.in_channels)])
            self._gather = np.asarray(rows, "int32")
        elif self.implementation == 2:
            mask = np.zeros((*self.in_spatial, *self.out_spatial), "float32")
            for position in itertools.product(*(range(n) for n in self.out_spatial)):
                for source in _connected(self.in_spatial, self.kernel_size, position, self.strides, self.padding):
                    mask[(*source, *position)] = 1.0
            n = self.rank
            self._mask = np.expand_dims(np.expand_dims(mask, 0), n + 1) if self.data_format == "channels_first" \
                else np.expand_dims(np.expand_dims(mask, n), -1)

    # -- computation -------------------------------------------------------------
    def call(self, inputs):
        flat = ops.reshape(inputs, (ops.shape(inputs)[0], -1))
        in_size = int(np.prod(self.in_spatial)) * self.in_channels
        out_size = int(np.prod(self.out_spatial)) * self.filters
        if self.implementation == 1:
            patches = ops.take(flat, self._gather, axis=1)                        # (batch, positions, window)
            out = ops.einsum("bpw,pwf->bpf", patches, ops.convert_to_tensor(self.kernel))
            out = ops.reshape(out, (-1, *self.out_spatial, self.filters))
            if self.data_format == "channels_first":
                out = ops.moveaxis(out, -1, 1)
        else:
            if self.implementation == 2:
                dense = ops.reshape(ops.multiply(self.kernel, self._mask), (in_size, out_size))
            else:
                pairs = np.asarray(self._pairs, "int32")[:, ::-1]                  # (input, output) indices
                dense = ops.scatter(pairs, ops.convert_to_tensor(self.kernel), (in_size, out_size))
            out = ops.reshape(ops.matmul(flat, dense), (-1, *self._join(self.out_spatial, self.filters)))
        if self.use_bias:
            # channels first: tf-keras's bias_add reshapes the (positions..., filters) bias to
            # (filters, positions...), not transposes it; its numbers are the ones to keep
            bias = self.bias if self.data_format == "channels_last" else \
                ops.reshape(self.bias, (self.filters, *self.out_spatial))
            out = _compat.add(out, bias)
        return self.activation(out) if self.activation is not None else out

    def compute_output_shape(self, input_shape):
        in_spatial, _ = self._split(input_shape[1:])
        out = tuple(_output_length(n, k, self.padding, s) for n, k, s in zip(in_spatial, self.kernel_size, self.strides))
        return (input_shape[0], *self._join(out, self.filters))

    def get_config(self):
        init, reg, con = keras.initializers.serialize, keras.regularizers.serialize, keras.constraints.serialize
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "activation": keras.activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": init(self.kernel_initializer), "bias_initializer": init(self.bias_initializer),
                "kernel_regularizer": reg(self.kernel_regularizer), "bias_regularizer": reg(self.bias_regularizer),
                "kernel_constraint": con(self.kernel_constraint), "bias_constraint": con(self.bias_constraint),
                "implementation": self.implementation}


@register
class LocallyConnected1D(_LocallyConnected):
    """tf-keras's ``LocallyConnected1D`` (inputs ``(batch, steps, channels)``)."""

    rank = 1


@register
class LocallyConnected2D(_LocallyConnected):
    """tf-keras's ``LocallyConnected2D`` (inputs ``(batch, rows, cols, channels)``)."""

    rank = 2
