"""Weight sources behind one lazy interface; see :func:`open_source`."""

from mwconv.sources.base import Source, TensorInfo
from mwconv.sources.detect import detect_format

__all__ = ["Source", "TensorInfo", "detect_format", "open_source"]


def open_source(path):
    """Open any supported weight file or SavedModel directory.

    The format is detected by magic bytes. Use as a context manager::

        >>> with open_source("weights.h5") as src:          # doctest: +SKIP
        ...     print(src.format, src.keys()[:3])
        ...     kernel = src.get_tensor("dense/dense/kernel:0")

    Raises :class:`mwconv.errors.InputRejected` for unreadable, corrupt or
    unsafe input, naming the file and the tensor.
    """
    fmt = detect_format(path)
    if fmt == "hdf5":
        from mwconv.sources.hdf5 import HDF5Source
        return HDF5Source(path)
    if fmt == "npy":
        from mwconv.sources.numpy_files import NpySource
        return NpySource(path)
    if fmt == "npz":
        from mwconv.sources.numpy_files import NpzSource
        return NpzSource(path)
    if fmt == "onnx":
        from mwconv.sources.onnx_file import OnnxSource
        return OnnxSource(path)
    if fmt == "keras":
        from mwconv.sources.keras_file import KerasSource
        return KerasSource(path)
    if fmt == "safetensors":
        from mwconv.sources.safetensors_file import SafetensorsSource
        return SafetensorsSource(path)
    from mwconv.sources.saved_model import SavedModelSource
    return SavedModelSource(path)
