"""Keras 3 layers that hold frozen and trainable weights and keep that split
through save and reload. Importing this package registers them for
serialization under the package name ``mwconv``, so ``.keras`` files that use
them load in safe mode with no ``custom_objects``."""

from mwconv.layers import (onnx_axis_ops, onnx_index_ops, onnx_ops, onnx_pool, onnx_resize, onnx_runtime,  # noqa: F401
                           tf_keras_layers, tf_ops)  # registers the ONNX, tf-keras and TF op layers
from mwconv.layers.locally_connected import LocallyConnected1D, LocallyConnected2D
from mwconv.layers.mixed import (
    MIXED_FOR_STOCK, MixedBatchNormalization, MixedConv1D, MixedConv1DTranspose, MixedConv2D, MixedConv2DTranspose,
    MixedConv3D, MixedConv3DTranspose, MixedDense, MixedDepthwiseConv1D, MixedDepthwiseConv2D, MixedEmbedding,
    MixedGroupNormalization, MixedLayerNormalization, MixedPReLU,
)
from mwconv.layers.mixin import KernelVariantsMixin, MixedWeightsMixin
from mwconv.layers.seed import CombinedTransformation, FixedBiasLinear, FrozenEmbedding
from mwconv.layers.tf_ops import LayerScale, TFOp

__all__ = [
    "MIXED_FOR_STOCK", "CombinedTransformation", "FixedBiasLinear", "FrozenEmbedding", "KernelVariantsMixin",
    "LayerScale", "LocallyConnected1D", "LocallyConnected2D", "MixedBatchNormalization", "MixedConv1D", "MixedConv1DTranspose", "MixedConv2D",
    "MixedConv2DTranspose", "MixedConv3D", "MixedConv3DTranspose", "MixedDense", "MixedDepthwiseConv1D",
    "MixedDepthwiseConv2D", "MixedEmbedding", "MixedGroupNormalization", "MixedLayerNormalization", "MixedPReLU",
    "MixedWeightsMixin", "TFOp",
]
