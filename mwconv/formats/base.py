"""The one lazy interface every weight source implements.

A source lists tensor names and their shape/dtype without reading data, and
reads one tensor on demand, so memory stays near the largest tensor::

    with open_source("weights.h5") as src:
        for name in src.keys():
            info = src.info(name)      # no data read
        arr = src.get_tensor(name)     # reads this tensor only
"""

import dataclasses
import hashlib
import os
import stat

import numpy as np

from mwconv.errors import InputRejected, os_reason

# A tensor whose declared size exceeds the bytes that back it by more than this
# factor (and by more than BOMB_FLOOR bytes) is refused as a shape/zip bomb.
BOMB_RATIO = 1000
BOMB_FLOOR = 64 << 20
HASH_CHUNK = 16 << 20
MAX_TENSOR_BYTES = 1 << 50   # 1 PiB: a declared size beyond this is corrupt, whatever backs it


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple
    dtype: str

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class Source:
    """Base class. Subclasses fill ``_infos`` (name -> TensorInfo) on open and
    implement ``_read(name)``."""

    format = "unknown"
    has_architecture = False
    default_layout = "keras"   # how --layout auto reads this source (keras, torch or onnx)

    def __init__(self, path):
        self.path = str(path)
        self._infos = {}
        self._metadata = {}

    # -- the interface -----------------------------------------------------
    def keys(self):
        return list(self._infos)

    def info(self, name):
        try:
            return self._infos[name]
        except KeyError:
            raise InputRejected("no such tensor in this source", path=self.path, tensor=name) from None

    def get_tensor(self, name):
        info = self.info(name)
        arr = self._read(name)
        if tuple(arr.shape) != tuple(info.shape):
            raise InputRejected(
                f"data has shape {tuple(arr.shape)} but the file declares {info.shape}",
                path=self.path, tensor=name)
        return arr

    def metadata(self):
        """Format-specific facts (dict of JSON-able values)."""
        return dict(self._metadata)

    def partition(self):
        """``{name: trainable}`` where the source records it, else ``None``."""
        return None

    def manifest(self):
        """The mwconv manifest embedded in the source, or ``None``."""
        return None

    # what the source's architecture is: None, "keras" (architecture() rebuilds it) or
    # "onnx-graph" (the ONNX graph importer rebuilds it)
    architecture_kind = None

    def consumers(self):
        """``{tensor: (op type, input index, int attributes)}`` of the graph node that uses
        each tensor, where the source is a graph (ONNX); ``{}`` otherwise."""
        return {}

    def run_model(self, inputs):
        """``(outputs, None)``: the source's own model run by its own framework on ``inputs``
        (a dict by input name), for verify's source check; or ``(None, reason)``."""
        kind = "with" if self.has_architecture else "without"
        return None, f"a {self.format} source {kind} architecture cannot run"

    def describe_architecture(self):
        """A summary of the stored architecture for ``inspect`` (JSON-able), or None."""
        return None

    def key_aliases(self):
        """``{tensor: another name for it}`` where the format has one the matcher should try
        (a tf-keras layer group's weight under its Keras 3 path); ``{}`` otherwise."""
        return {}

    def release_architecture(self):
        """Drop a rebuilt model the source holds, so its memory can be freed."""

    def architecture(self):
        """The Keras model the source describes, rebuilt in safe mode; InputRejected when it has none."""
        raise InputRejected(f"this {self.format} source carries no architecture mwconv can rebuild; pass --model "
                            "(a .keras file, module:function or file.py:function returning a Keras model)",
                            path=self.path)

    def sha256(self, name):
        """The sha256 of the tensor's C-order bytes, hashed in chunks (no second copy)."""
        arr = np.ascontiguousarray(self.get_tensor(name))
        flat = arr.reshape(-1).view(np.uint8)
        digest = hashlib.sha256()
        for start in range(0, flat.size, HASH_CHUNK):
            digest.update(flat[start:start + HASH_CHUNK])
        return digest.hexdigest()

    # -- plumbing ----------------------------------------------------------
    def _read(self, name):  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _add(self, name, shape, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind == "O" or dtype.hasobject:
            raise InputRejected("object dtype is refused (it needs pickle)", path=self.path, tensor=name)
        if dtype.kind not in "biufc" and dtype.name not in ("bfloat16",):
            raise InputRejected(f"unsupported dtype {dtype}", path=self.path, tensor=name)
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise InputRejected(f"declares the shape {dims}, with a negative dimension (corrupt)", path=self.path,
                                tensor=name)
        size = dtype.itemsize
        for d in dims:
            size *= d   # Python ints: no overflow before the check
        if size > MAX_TENSOR_BYTES:
            raise InputRejected(f"declares the shape {dims}: {size} bytes, more than any file holds (corrupt or "
                                "a size bomb)", path=self.path, tensor=name)
        self._infos[name] = TensorInfo(name, dims, dtype.name)
        return self._infos[name]

    def _check_backed(self, name, present_bytes, what="bytes present"):
        """Refuse declared sizes far beyond the bytes that back them."""
        declared = self._infos[name].nbytes
        if declared > BOMB_FLOOR and declared > BOMB_RATIO * max(present_bytes, 1):
            raise InputRejected(
                f"declares {declared} bytes but only {present_bytes} {what}: refused as a size bomb",
                path=self.path, tensor=name)


def resolve_inside(model_path, location, tensor, what="external data"):
    """Resolve a file named inside a source (ONNX external data, safetensors shards),
    refusing anything outside the source's folder: absolute paths, '..', symlinks leaving it."""
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location[:3]:
        raise InputRejected(f"{what} location '{location}' is absolute: refused", path=model_path, tensor=tensor)
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise InputRejected(f"{what} location '{location}' contains '..': refused", path=model_path, tensor=tensor)
    base = os.path.realpath(os.path.dirname(os.path.abspath(model_path)))
    target = os.path.join(base, location)
    real = os.path.realpath(target)
    if os.path.commonpath([base, real]) != base:
        raise InputRejected(f"{what} location '{location}' is a symlink leaving the model folder: refused",
                            path=model_path, tensor=tensor)
    if not os.path.isfile(real):
        raise InputRejected(f"{what} file '{location}' does not exist", path=model_path, tensor=tensor)
    return real


TEXT_LIMIT = 1 << 20   # rules and pipeline files: far more than any real one


def read_text_file(path, what, error=InputRejected, limit=TEXT_LIMIT):
    """The text of a small input file (a rules or pipeline file): a regular file (never a
    FIFO or device, which could block or never end), at most ``limit`` bytes, UTF-8.
    Failures raise ``error`` naming the file."""
    path = os.fspath(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"the {what} is not a regular file (a folder, FIFO, device or socket): refused", path=path)
        if info.st_size > limit:
            raise error(f"the {what} holds {info.st_size} bytes; more than {limit} is refused", path=path)
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as e:
        raise error(os_reason(e) or f"cannot read the {what} ({e.strerror})", path=path) from e
    try:
        return raw.decode("utf8")
    except UnicodeDecodeError as e:
        raise error(f"the {what} is not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x})", path=path) from e


MAX_JSON_BYTES = 64 << 20


def parse_json(text, path, what):
    """A JSON document embedded in a source (a model config, a manifest), or InputRejected."""
    import json

    if text is None:
        return None
    if len(text) > MAX_JSON_BYTES:
        raise InputRejected(f"the {what} is {len(text)} bytes of JSON; more than {MAX_JSON_BYTES} is refused",
                            path=path)
    try:
        return json.loads(text)
    except (ValueError, TypeError) as e:
        raise InputRejected(f"the {what} is not valid JSON ({e})", path=path) from e
