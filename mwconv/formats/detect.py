"""Format detection by magic bytes (never by extension alone)."""

import os
import stat

from mwconv.errors import InputRejected
from mwconv.formats.sniff import describe, is_pickle, zip_names


def detect_format(path):
    """The name of the format that holds ``path`` (a file or a SavedModel folder), from
    its bytes; raise InputRejected when none does or when the extension disagrees."""
    from mwconv.formats import source_formats

    path = os.fspath(path)
    if not os.path.lexists(path):
        raise InputRejected("no such file or directory", path=path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model"
        from mwconv.formats.keras_hub_preset import is_preset
        if is_preset(path):
            return "keras_hub_preset"
        from mwconv.formats.names import _STEM_SUFFIXES
        if path.rstrip(os.sep).endswith(_STEM_SUFFIXES):      # a file's name: the folder is the surprise
            raise InputRejected("is a folder, not a file", path=path)
        raise InputRejected("is a directory but holds neither saved_model.pb (a SavedModel) nor a keras-hub "
                            "config.json (a keras-hub preset)", path=path)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InputRejected(f"cannot read ({e.strerror}; a dangling link?)", path=path) from e
    if not stat.S_ISREG(mode):   # a FIFO or device would block or never end
        raise InputRejected("is not a regular file (a FIFO, device or socket): refused", path=path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputRejected(f"cannot read ({e.strerror})", path=path) from e
    if not head:
        raise InputRejected("file is empty", path=path)
    if is_pickle(head):
        raise InputRejected("holds Python pickle data (magic bytes 80 0x), which is never loaded: it can run code",
                            path=path)
    formats = source_formats()
    found = next((f for f in formats if f.sniff is not None and f.sniff(path, head)), None)
    if found is None:
        what = "a ZIP archive that is neither .npz nor .keras" if zip_names(path, head) is not None else describe(head)
        titles = ", ".join(f.title for f in formats)
        raise InputRejected(f"unrecognised format ({what}); supported: {titles}", path=path)
    ext = os.path.splitext(path)[1].lower()
    claimed = next((f for f in formats if ext in f.extensions), None)
    if claimed is not None and claimed is not found:
        raise InputRejected(f"extension '{ext}' says {claimed.title} but the content is {found.title} "
                            f"({describe(head)}); rename the file or check it", path=path)
    return found.name
