"""Format detection by magic bytes (never by extension alone)."""

import os
import zipfile

from mwconv.errors import InputRejected

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")

# extension -> formats it may hold
_EXTENSIONS = {
    ".h5": {"hdf5"}, ".hdf5": {"hdf5"}, ".keras": {"keras"}, ".npy": {"npy"},
    ".npz": {"npz"}, ".onnx": {"onnx"}, ".safetensors": {"safetensors"}, ".json": {"safetensors"},
}

FORMAT_NAMES = {
    "hdf5": "HDF5", "npy": "NumPy .npy", "npz": "NumPy .npz", "onnx": "ONNX protobuf",
    "keras": "Keras .keras zip", "saved_model": "TensorFlow SavedModel", "zip": "ZIP archive",
    "pickle": "Python pickle", "safetensors": "safetensors",
}


def _describe(head):
    shown = " ".join(f"{b:02x}" for b in head[:8])
    return f"magic bytes {shown}" if head else "no bytes at all"


def _sniff_bytes(path, head):
    from mwconv.formats import safetensors

    if safetensors.looks_like(head, os.path.getsize(path)):
        return "safetensors"
    if path.lower().endswith(safetensors.INDEX_SUFFIX) and head.lstrip()[:1] == b"{":
        return "safetensors"   # a sharded checkpoint's index; the reader checks its weight_map
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head[:4] in ZIP_MAGICS:
        return _sniff_zip(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    # ONNX ModelProto: field 1 (ir_version, varint) comes first in every file
    # written by onnx; a protobuf varint key 0x08 then a small version number.
    if head[:1] == b"\x08" and 1 <= head[1] <= 32:
        return "onnx"
    return None


def _sniff_zip(path):
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise InputRejected(f"corrupt or truncated ZIP archive ({e})", path=path) from e
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return "keras"
    if not names or all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def detect_format(path):
    """Return one of hdf5, npy, npz, onnx, keras, safetensors, saved_model; raise InputRejected otherwise."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise InputRejected("no such file or directory", path=path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model"
        raise InputRejected("is a directory but holds no saved_model.pb (not a SavedModel)", path=path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputRejected(f"cannot read ({e.strerror})", path=path) from e
    if not head:
        raise InputRejected("file is empty", path=path)
    fmt = _sniff_bytes(path, head)
    ext = os.path.splitext(path)[1].lower()
    expected = _EXTENSIONS.get(ext)
    if fmt == "pickle":
        raise InputRejected("holds Python pickle data (magic bytes 80 0x), which is never loaded: it can run code", path=path)
    if fmt is None or fmt == "zip":
        what = _describe(head) if fmt is None else "a ZIP archive that is neither .npz nor .keras"
        raise InputRejected(f"unrecognised format ({what}); supported: HDF5, .npy, .npz, ONNX, .keras, safetensors, SavedModel", path=path)
    if expected is not None and fmt not in expected:
        raise InputRejected(
            f"extension '{ext}' says {FORMAT_NAMES[next(iter(expected))]} but the content is "
            f"{FORMAT_NAMES[fmt]} ({_describe(head)}); rename the file or check it", path=path)
    return fmt
