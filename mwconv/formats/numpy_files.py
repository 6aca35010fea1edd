"""NumPy sources: ``.npy`` (one tensor) and ``.npz`` (stored or compressed).

Headers are parsed without reading data; pickled or object arrays are refused
(``allow_pickle`` is never set)."""

import hashlib
import os
import tokenize
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npformat

from mwconv.errors import InputRejected
from mwconv.formats.base import HASH_CHUNK, Source
from mwconv.formats.format import Format
from mwconv.formats.sniff import NPY_MAGIC, zip_names


def _read_header(fp, path, name):
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fp)
        else:
            from mwconv import _compat
            shape, fortran, dtype = _compat.read_npy_header(fp, version)
    except (ValueError, OSError, SyntaxError, EOFError, TypeError, KeyError, tokenize.TokenError) as e:
        # numpy parses the header as a Python literal: a damaged one fails in many ways
        raise InputRejected(f"corrupt or truncated .npy header ({e})", path=path, tensor=name) from e
    return shape, fortran, dtype


class NpySource(Source):
    format = "npy"
    default_layout = "torch"

    def __init__(self, path):
        super().__init__(path)
        self.name = os.path.splitext(os.path.basename(self.path))[0]
        with open(self.path, "rb") as f:
            shape, _, dtype = _read_header(f, self.path, self.name)
            offset = f.tell()
        info = self._add(self.name, shape, dtype)
        present = os.path.getsize(self.path) - offset
        if present < info.nbytes:
            self._check_backed(self.name, present)
            raise InputRejected(f"declares {info.nbytes} bytes of data but only {present} are present (truncated)",
                                path=self.path, tensor=self.name)

    def _read(self, name):
        # memory-mapped and read-only: bytes are paged in only when used
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


class NpzSource(Source):
    format = "npz"
    default_layout = "torch"

    def __init__(self, path):
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as e:
            raise InputRejected(f"corrupt or truncated .npz ({e})", path=path) from e
        try:
            self._members = {}
            for member in self._zip.infolist():
                self._scan(member)
            compressed = any(m.compress_type != zipfile.ZIP_STORED for m in self._zip.infolist())
            self._metadata["compressed"] = compressed
        except BaseException:
            self._zip.close()
            raise

    def _scan(self, member):
        name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
        try:
            with self._zip.open(member) as fp:
                shape, _, dtype = _read_header(fp, self.path, name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise InputRejected(f"corrupt or truncated archive member ({e})", path=self.path, tensor=name) from e
        info = self._add(name, shape, dtype)
        self._check_backed(name, member.compress_size, "compressed bytes are present")
        if info.nbytes > member.file_size:
            raise InputRejected(
                f"declares {info.nbytes} bytes but the archive member holds only {member.file_size} (truncated)",
                path=self.path, tensor=name)
        self._members[name] = member

    def _read(self, name):
        try:
            with self._zip.open(self._members[name]) as fp:
                return npformat.read_array(fp, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise InputRejected(f"cannot read data ({e})", path=self.path, tensor=name) from e

    def sha256(self, name):
        """Hashed from the archive stream, chunk by chunk: a member is never decompressed whole."""
        info = self.info(name)
        try:
            with self._zip.open(self._members[name]) as fp:
                _, fortran, _ = _read_header(fp, self.path, name)
                if fortran and len(info.shape) > 1:
                    return super().sha256(name)     # the stored order is not the C order hashed
                digest, remaining = hashlib.sha256(), info.nbytes
                while remaining:
                    chunk = fp.read(min(HASH_CHUNK, remaining))
                    if not chunk:
                        raise InputRejected("the archive member ends before its data (truncated)", path=self.path,
                                            tensor=name)
                    digest.update(chunk)
                    remaining -= len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise InputRejected(f"cannot read data ({e})", path=self.path, tensor=name) from e
        return digest.hexdigest()

    def close(self):
        self._zip.close()


def _sniff_npy(path, head):
    return head.startswith(NPY_MAGIC)


def _sniff_npz(path, head):
    names = zip_names(path, head)
    return names is not None and (not names or all(n.endswith(".npy") for n in names))


NPY = Format("npy", "NumPy .npy", (".npy",), _sniff_npy, "mwconv.formats.numpy_files:NpySource", "none (weights only)")
NPZ = Format("npz", "NumPy .npz", (".npz",), _sniff_npz, "mwconv.formats.numpy_files:NpzSource", "none (weights only)")
