"""Every file format mwconv knows, one object each (``Format``): its name,
extensions, magic-byte sniffer, reader, writer, artifact, manifest location,
whether it records trainable flags and how closely its outputs must match.

>>> by_name("onnx").manifest_location
'the mwconv_manifest entry of metadata_props'
>>> [f.name for f in export_formats()]
['saved_model', 'keras', 'weights_h5', 'onnx', 'safetensors']

Adding a format: a module in this package that defines a ``Source`` subclass
(the reader), a ``Format`` object and, for export formats, a writer and an
``Artifact``; then one line in ``_registry`` below (see docs/architecture.md).
``names`` stays light (no framework imports) for the command line.
"""

import os

from mwconv.formats.names import EXPORT_FORMATS

__all__ = ["Source", "TensorInfo", "by_name", "check_replaceable", "detect_format", "export_formats", "open_artifact",
           "open_source", "source_formats"]


def __getattr__(name):
    # the package stays light (the command line imports formats.names): readers load on use
    if name in ("Source", "TensorInfo"):
        from mwconv.formats import base
        return getattr(base, name)
    raise AttributeError(f"module 'mwconv.formats' has no attribute {name!r}")


def detect_format(path):
    """The name of the format that holds ``path``, from its bytes (see ``formats.detect``)."""
    from mwconv.formats.detect import detect_format as detect
    return detect(path)


def _registry():
    """Every Format, in the order their sniffers are tried."""
    from mwconv.formats import (hdf5, keras_file, keras_hub_preset, numpy_files, onnx_file, safetensors_file,
                                saved_model)
    return (safetensors_file.FORMAT, hdf5.HDF5, numpy_files.NPY, keras_file.FORMAT, numpy_files.NPZ,
            onnx_file.FORMAT, saved_model.FORMAT, keras_hub_preset.FORMAT, hdf5.WEIGHTS_H5)


def source_formats():
    """The formats ``detect_format`` can name, in sniffing order."""
    return tuple(f for f in _registry() if f.name != "weights_h5")


def export_formats():
    """The formats ``mwconv export`` writes, in the command line's order."""
    by = {f.name: f for f in _registry()}
    return tuple(by[name] for name in EXPORT_FORMATS)


def by_name(name):
    """The Format called ``name`` (KeyError if there is none)."""
    return {f.name: f for f in _registry()}[name]


def open_source(path):
    """Open any supported weight file or SavedModel folder; the format comes from its bytes.

    >>> with open_source("weights.h5") as src:          # doctest: +SKIP
    ...     print(src.format, src.keys()[:3])
    ...     kernel = src.get_tensor("dense/dense/kernel:0")

    Raises :class:`mwconv.errors.InputRejected` for unreadable, corrupt or unsafe
    input, naming the file and the tensor.
    """
    return by_name(detect_format(path)).open_source(path)


def open_artifact(path, reference_model=None, format_name=None):
    """The artifact under verification at ``path``; ``format_name`` when the caller knows it
    (an export just wrote it), else detected from its bytes."""
    return by_name(format_name or detect_format(path)).open_artifact(path, reference_model)


def _same_kind(target, format_name):
    from mwconv.errors import InputRejected

    if format_name == "saved_model":
        from mwconv.formats.saved_model import MANIFEST_FILE
        return (os.path.isdir(target) and not os.path.islink(target)
                and os.path.isfile(os.path.join(target, "saved_model.pb"))
                and os.path.isfile(os.path.join(target, MANIFEST_FILE)))
    if not os.path.isfile(target) or os.path.islink(target):
        return False
    try:
        found = detect_format(target)
    except InputRejected:
        return False
    return found == ("hdf5" if format_name == "weights_h5" else format_name)


def check_replaceable(target, format_name, inputs=()):
    """Refuse (OutputRefused, exit 4) an output that would destroy what mwconv did not write:
    one that is an input or holds one (``-o .``), or an existing path that is not a previous
    artifact of the same format (a SavedModel folder needs mwconv's manifest in it)."""
    from mwconv.errors import OutputRefused

    real = os.path.realpath(target)
    for source in inputs:
        held = os.path.realpath(source)
        if held == real or held.startswith(real.rstrip(os.sep) + os.sep):
            raise OutputRefused(f"is the input {os.fspath(source)} or a folder holding it; choose another output",
                                path=target)
    if os.path.lexists(target) and not _same_kind(target, format_name):
        kind = "a SavedModel written by mwconv" if format_name == "saved_model" else f"a {format_name} file"
        raise OutputRefused(f"exists and is not {kind}: --force replaces only a previous artifact of the same "
                            "format; move it away or choose another output", path=target)
