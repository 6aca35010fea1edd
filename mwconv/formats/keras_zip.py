"""Reading a ``.keras`` zip without copying its weights.

Keras's own ``load_model`` copies ``model.weights.h5`` out of the archive (into
memory, or into a temporary file when memory looks short) and, when the archive
has more than three members, extracts all of it to a temporary folder. Keras
stores the weights member uncompressed, so mwconv instead opens it where it lies:
``StoredMember`` is a read-only file object over the member's byte range, which
h5py reads like a file. The member's CRC-32 is checked on a second thread while
the model is built and filled, so corruption is still refused.
"""

import io
import os
import struct
import threading
import zipfile
import zlib

WEIGHTS_MEMBER = "model.weights.h5"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")        # a zip local file header (30 bytes)
_CRC_BLOCK = 16 << 20


class StoredMember(io.BytesIO):
    """The bytes of an uncompressed zip member, read in place with ``os.pread``.

    It subclasses ``io.BytesIO`` (holding nothing) because Keras's weight store takes a
    path or a BytesIO; its name ends in ``.weights.h5`` for the same reason."""

    def __init__(self, path, offset, size):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._offset, self._size, self._pos = offset, size, 0
        self.name = "model.weights.h5"

    def __str__(self):
        return self.name

    def seekable(self):
        return True

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self._size - self._pos))
        done = 0
        while done < want:
            got = os.preadv(self._fd, [view[done:want]], self._offset + self._pos + done)
            if got <= 0:
                break
            done += got
        self._pos += done
        return done

    def read(self, size=-1):
        size = self._size - self._pos if size is None or size < 0 else size
        buffer = bytearray(max(0, min(size, self._size - self._pos)))
        return bytes(buffer[:self.readinto(buffer)])

    def readable(self):
        return True

    def writable(self):
        return False

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()


def stored_member(path, name=WEIGHTS_MEMBER):
    """``(offset, ZipInfo)`` of an uncompressed, unencrypted member, else None."""
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(name)
        except KeyError:
            return None
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or info.compress_size != info.file_size:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        return None
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != b"PK\x03\x04":
        return None
    name_len, extra_len = fields[-2:]
    offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if offset + info.file_size > os.path.getsize(path):
        return None
    return offset, info


class CrcCheck:
    """Compute a stored member's CRC-32 on a thread; ``result()`` is None when it matches,
    else the reason."""

    def __init__(self, path, offset, info):
        self._args = (path, offset, info)
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        path, offset, info = self._args
        crc, left = 0, info.file_size
        try:
            with open(path, "rb", buffering=0) as f:
                f.seek(offset)
                buffer = bytearray(min(_CRC_BLOCK, max(left, 1)))
                while left > 0:
                    got = f.readinto(memoryview(buffer)[:min(left, len(buffer))])
                    if not got:
                        self._error = "the archive ends inside the member (truncated)"
                        return
                    crc = zlib.crc32(memoryview(buffer)[:got], crc)
                    left -= got
        except OSError as e:
            self._error = f"cannot read it ({e})"
            return
        if crc != info.CRC:
            self._error = "fails its CRC check (corrupt)"

    def result(self):
        self._thread.join()
        return self._error

