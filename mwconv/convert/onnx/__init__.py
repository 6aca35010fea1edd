"""ONNX graph import: rebuild a Keras model from an ONNX graph (see ``graph``)."""

from mwconv.convert.onnx.graph import build_from_onnx, supported_ops

__all__ = ["build_from_onnx", "supported_ops"]
