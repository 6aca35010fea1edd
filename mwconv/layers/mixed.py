"""Stock Keras layers with a choice of frozen weights.

Each takes the stock layer's constructor plus ``frozen=[names]``; Dense and
Conv also take ``frozen_mask`` / ``adapter_rank``; Embedding takes
``adapter_rank`` / ``frozen_rows``. See :mod:`mwconv.layers.mixin`.

>>> layer = MixedDense(8, frozen=["kernel"])          # doctest: +SKIP
>>> emb = MixedEmbedding(1000, 64, frozen_rows=900)   # 100 new trainable rows
"""

import keras

from mwconv.layers.mixin import KernelVariantsMixin, MixedWeightsMixin

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
class Conv2DTranspose(MixedWeightsMixin, keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` with a choice of frozen weights."""


@register
class Conv1DTranspose(MixedWeightsMixin, keras.layers.Conv1DTranspose):
    """``keras.layers.Conv1DTranspose`` with a choice of frozen weights."""


@register
class Conv3DTranspose(MixedWeightsMixin, keras.layers.Conv3DTranspose):
    """``keras.layers.Conv3DTranspose`` with a choice of frozen weights."""


@register
class DepthwiseConv1D(MixedWeightsMixin, keras.layers.DepthwiseConv1D):
    """``keras.layers.DepthwiseConv1D`` with a choice of frozen weights."""


@register
class DepthwiseConv2D(MixedWeightsMixin, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` with a choice of frozen weights."""


@register
class BatchNormalization(MixedWeightsMixin, keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with a choice of frozen weights
    (typically ``frozen=["gamma", "beta"]``; the moving statistics are
    non-trainable already and still update in training mode)."""


@register
class PReLU(MixedWeightsMixin, keras.layers.PReLU):
    """``keras.layers.PReLU`` with a frozen ``alpha`` when asked."""


@register
class LayerNormalization(MixedWeightsMixin, keras.layers.LayerNormalization):
    """``keras.layers.LayerNormalization`` with a choice of frozen weights."""


@register
class GroupNormalization(MixedWeightsMixin, keras.layers.GroupNormalization):
    """``keras.layers.GroupNormalization`` with a choice of frozen weights."""


MixedDense, MixedConv1D, MixedConv2D, MixedConv3D = Dense, Conv1D, Conv2D, Conv3D
MixedEmbedding, MixedConv2DTranspose, MixedDepthwiseConv2D = Embedding, Conv2DTranspose, DepthwiseConv2D
MixedBatchNormalization, MixedPReLU = BatchNormalization, PReLU
MixedConv1DTranspose, MixedConv3DTranspose, MixedDepthwiseConv1D = Conv1DTranspose, Conv3DTranspose, DepthwiseConv1D
MixedLayerNormalization, MixedGroupNormalization = LayerNormalization, GroupNormalization

MIXED_FOR_STOCK = {
    "Dense": MixedDense, "Conv1D": MixedConv1D, "Conv2D": MixedConv2D, "Conv3D": MixedConv3D,
    "Embedding": MixedEmbedding, "Conv2DTranspose": MixedConv2DTranspose,
    "DepthwiseConv2D": MixedDepthwiseConv2D, "BatchNormalization": MixedBatchNormalization,
    "PReLU": MixedPReLU, "Conv1DTranspose": MixedConv1DTranspose, "Conv3DTranspose": MixedConv3DTranspose,
    "DepthwiseConv1D": MixedDepthwiseConv1D, "LayerNormalization": MixedLayerNormalization,
    "GroupNormalization": MixedGroupNormalization,
}
