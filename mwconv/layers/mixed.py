"""Stock Keras layers with a choice of frozen weights.

Each takes the stock layer's constructor plus ``frozen=[names]``; Dense and
Conv also take ``frozen_mask`` / ``adapter_rank``; Embedding takes
``adapter_rank`` / ``frozen_rows``. See :mod:`mwconv.layers.mixin`.

>>> layer = MixedDense(8, frozen=["kernel"])          # doctest: +SKIP
>>> emb = MixedEmbedding(1000, 64, frozen_rows=900)   # 100 new trainable rows
"""

import keras

from mwconv.layers.mixin import KernelVariantsMixin, MixedWeightsMixin
from mwconv.layers.statistics import runs_frozen

register = keras.saving.register_keras_serializable(package="mwconv")

# The classes carry the stock class names (registered as "mwconv>Dense", ...):
# Keras names the groups of a weights file after the class, so a model of
# mixed layers writes the same `.weights.h5` layout as the stock model and each
# loads the other's file. Import them as MixedDense etc.


class _KernelProperty:
    @property
    def kernel(self):
        return self._effective(super().kernel)


@register
class Dense(_KernelProperty, KernelVariantsMixin, keras.layers.Dense):
    """``keras.layers.Dense`` with frozen weights, element masks or adapters."""


@register
class Conv1D(_KernelProperty, KernelVariantsMixin, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` with frozen weights, element masks or adapters."""


@register
class Conv2D(_KernelProperty, KernelVariantsMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with frozen weights, element masks or adapters."""


@register
class Conv3D(_KernelProperty, KernelVariantsMixin, keras.layers.Conv3D):
    """``keras.layers.Conv3D`` with frozen weights, element masks or adapters."""


@register
class Embedding(KernelVariantsMixin, keras.layers.Embedding):
    """``keras.layers.Embedding`` with a frozen table, frozen rows (vocabulary
    extension: ``frozen_rows=N`` keeps rows ``< N`` frozen) or adapters."""

    _variant_weight = "embeddings"
    _supports_rows = True

    def __init__(self, *args, frozen_mask=None, **kwargs):
        if frozen_mask is not None:
            raise ValueError("MixedEmbedding does not support `frozen_mask`; use `frozen_rows` "
                             f"or frozen=['embeddings']. Received: frozen_mask={frozen_mask!r}")
        super().__init__(*args, **kwargs)

    @property
    def embeddings(self):
        return self._effective(super().embeddings)

    def get_config(self):
        config = super().get_config()
        config.pop("frozen_mask", None)
        return config


@register
class BatchNormalization(MixedWeightsMixin, keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with a choice of frozen weights. With its own
    weights all frozen it runs as Keras runs a frozen layer: in inference mode under
    ``fit`` and ``training=True``, moving statistics unchanged. ``update_statistics=True``
    keeps the parameters frozen and updates the statistics in training."""

    def call(self, inputs, training=None, mask=None):
        if training and runs_frozen(self):
            training = False
        return super().call(inputs, training=training, mask=mask)


# Every other built-in Keras layer gets a counterpart generated from the stock class: the
# same class name and weights-file layout, with ``frozen=[names]``. For a layer that owns
# sub-layers (RNNs and their cells, Bidirectional, TimeDistributed, MultiHeadAttention)
# a name is the weight's path below the layer: ``forward_lstm/lstm_cell/kernel``.
_NOT_MIXABLE = {"Layer", "InputLayer", "Lambda", "TFSMLayer", "Wrapper", "Identity"}


def _generate(written):
    made = {}
    for attribute in sorted(dir(keras.layers)):
        stock = getattr(keras.layers, attribute)
        if not isinstance(stock, type) or not issubclass(stock, keras.layers.Layer):
            continue
        name = stock.__name__
        if name in written or name in made or name in _NOT_MIXABLE or issubclass(stock, keras.Model):
            continue
        doc = f"``keras.layers.{name}`` with a choice of frozen weights (generated from the stock class)."
        made[name] = register(type(name, (MixedWeightsMixin, stock), {"__module__": __name__, "__qualname__": name,
                                                                      "__doc__": doc}))
    return made


MIXED_FOR_STOCK = {"Dense": Dense, "Conv1D": Conv1D, "Conv2D": Conv2D, "Conv3D": Conv3D, "Embedding": Embedding,
                   "BatchNormalization": BatchNormalization}
MIXED_FOR_STOCK.update(_generate(MIXED_FOR_STOCK))
"""Stock class name -> its mixed counterpart, for every built-in Keras layer."""

MixedDense, MixedConv1D, MixedConv2D, MixedConv3D, MixedEmbedding = Dense, Conv1D, Conv2D, Conv3D, Embedding
MixedConv2DTranspose = MIXED_FOR_STOCK["Conv2DTranspose"]
MixedConv1DTranspose = MIXED_FOR_STOCK["Conv1DTranspose"]
MixedConv3DTranspose = MIXED_FOR_STOCK["Conv3DTranspose"]
MixedDepthwiseConv1D = MIXED_FOR_STOCK["DepthwiseConv1D"]
MixedDepthwiseConv2D = MIXED_FOR_STOCK["DepthwiseConv2D"]
MixedBatchNormalization = MIXED_FOR_STOCK["BatchNormalization"]
MixedPReLU = MIXED_FOR_STOCK["PReLU"]
MixedLayerNormalization = MIXED_FOR_STOCK["LayerNormalization"]
MixedGroupNormalization = MIXED_FOR_STOCK["GroupNormalization"]


def mixed_class_for(layer):
    """The mixed counterpart of ``layer``'s class (itself when already mixed), or None."""
    if isinstance(layer, MixedWeightsMixin):
        return type(layer)
    cls = MIXED_FOR_STOCK.get(type(layer).__name__)
    if cls is None:
        return None
    stock = next(b for b in cls.__mro__[1:] if b.__module__.startswith("keras."))
    return cls if isinstance(layer, stock) else None
