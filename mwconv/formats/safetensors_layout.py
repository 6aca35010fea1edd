"""The safetensors layout: an 8-byte little-endian header length, a JSON header
(``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``),
then the tensor bytes. The header is read and checked here; the reader reads
data through the ``safetensors`` package, and the writer streams one tensor at
a time so an export never holds a second copy of the weights."""

import json
import os
import struct

import numpy as np

from mwconv.errors import InputRejected

MAX_HEADER_BYTES = 100 << 20      # the safetensors package's own limit
INDEX_SUFFIX = ".safetensors.index.json"

# safetensors dtype code <-> numpy dtype name
DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
CODES = {v: k for k, v in DTYPES.items()}


def numpy_dtype(name):
    """A numpy dtype by name, bfloat16 included (ml_dtypes comes with Keras and TensorFlow)."""
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def looks_like(head, size):
    """Whether the first 16 bytes of a ``size``-byte file are a safetensors header start."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= min(MAX_HEADER_BYTES, size - 8)


def read_header(path):
    """``(entries, metadata, data_start)``: entries is ``{name: (dtype name, shape, begin, end)}``
    with offsets from the file's start, checked against the file size."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputRejected("truncated safetensors header", path=path)
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or length + 8 > size:
            raise InputRejected(f"declares a {length}-byte header in a {size}-byte file (corrupt or truncated)",
                                path=path)
        try:
            header = json.loads(f.read(length))
        except (ValueError, UnicodeDecodeError) as e:
            raise InputRejected(f"safetensors header is not valid JSON ({e})", path=path) from e
    if not isinstance(header, dict):
        raise InputRejected("safetensors header is not a JSON object", path=path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InputRejected("safetensors __metadata__ must map strings to strings", path=path)
    start = 8 + length
    entries = {name: _entry(path, name, spec, start, size) for name, spec in header.items()}
    return entries, metadata, start


def _entry(path, name, spec, start, size):
    try:
        code, shape, (begin, end) = spec["dtype"], [int(d) for d in spec["shape"]], spec["data_offsets"]
    except (KeyError, TypeError, ValueError) as e:
        raise InputRejected("malformed safetensors header entry", path=path, tensor=name) from e
    if code not in DTYPES:
        raise InputRejected(f"unsupported safetensors dtype {code!r}", path=path, tensor=name)
    if any(d < 0 for d in shape) or not (0 <= begin <= end <= size - start):
        raise InputRejected(f"data offsets [{begin}, {end}] or shape {shape} do not fit the file", path=path,
                            tensor=name)
    itemsize = 1 if code == "BOOL" else numpy_dtype(DTYPES[code]).itemsize
    expected = int(np.prod(shape, dtype=object)) * itemsize
    if expected != end - begin:
        raise InputRejected(f"shape {shape} of {code} needs {expected} bytes but the file holds {end - begin}",
                            path=path, tensor=name)
    return DTYPES[code], tuple(shape), start + begin, start + end


def write(path, tensors, metadata=None, on_tensor=None):
    """Write ``tensors`` (a list of ``(name, shape, dtype name, read)`` where
    ``read()`` returns the array) to ``path``, reading one tensor at a time.
    ``on_tensor(name, nbytes)`` is called after each tensor is written."""
    header, offset = {}, 0
    for name, shape, dtype, _ in tensors:
        if name in header:
            raise InputRejected("two weights share this name; safetensors needs unique names", path=path,
                                tensor=name)
        if dtype not in CODES:
            raise InputRejected(f"dtype {dtype} has no safetensors code", path=path, tensor=name)
        nbytes = int(np.prod(shape, dtype=np.int64)) * numpy_dtype(dtype).itemsize
        header[name] = {"dtype": CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header = {"__metadata__": dict(metadata), **header}
    blob = json.dumps(header, separators=(",", ":")).encode("utf8")
    blob += b" " * (-len(blob) % 8)   # data starts 8-byte aligned, as the package writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, dtype, read in tensors:
            value = np.ascontiguousarray(read(), dtype=numpy_dtype(dtype))
            if value.dtype.byteorder == ">":
                value = value.astype(value.dtype.newbyteorder("<"))
            f.write(value.reshape(-1).view(np.uint8).data)
            if on_tensor:
                on_tensor(name, value.nbytes)
