"""Magic bytes, shared by the formats' sniffers (light: no framework imports)."""

import zipfile

from mwconv.errors import InputRejected

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def describe(head):
    """``magic bytes 89 48 44 46 ...`` for messages."""
    shown = " ".join(f"{b:02x}" for b in head[:8])
    return f"magic bytes {shown}" if head else "no bytes at all"


def zip_names(path, head):
    """The member names of a ZIP archive, or None when ``head`` is no ZIP magic."""
    if head[:4] not in ZIP_MAGICS:
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            return set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise InputRejected(f"corrupt or truncated ZIP archive ({e})", path=path) from e


def is_pickle(head):
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
