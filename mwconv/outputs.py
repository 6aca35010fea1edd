"""Atomic outputs: stage in a temporary sibling, move into place at the end.

An interrupted or failed run never leaves a partial artifact at the target and
never damages an existing one; existing outputs need ``force=True``.
"""

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time

from mwconv import runtime
from mwconv.errors import OutputRefused


def check_target(target, force=False):
    """Raise OutputRefused if ``target`` exists (without force) or its folder is not writable."""
    target = os.path.abspath(os.fspath(target))
    if os.path.lexists(target) and not force:
        raise OutputRefused("already exists; pass --force to replace it", path=target)
    parent = os.path.dirname(target)
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputRefused(f"folder '{probe}' is not writable", path=target)
    return target


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _stage_prefix(target):
    """The staging folders of one target share this prefix (short: any target name fits)."""
    name = os.path.basename(target).encode("utf8", "surrogateescape")
    return f".mwconv-{hashlib.sha256(name).hexdigest()[:12]}."


FRESH_SECONDS = 60


def _age(path):
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return float("inf")


def _owner(root, prefix=""):
    """The pid of the run that made a staging folder: its name says it
    (``<prefix><pid>.<random>.mwconv-tmp``, so a run killed before it wrote anything is still
    known), else its ``.pid`` (folders of older versions); None when neither does."""
    head = os.path.basename(root)[len(prefix):].split(".")[0] if prefix else ""
    if head.isdigit():
        return int(head)
    try:
        with open(os.path.join(root, ".pid"), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def staging_folders(target, live=None):
    """Names of the staging folders of ``target``; with ``live``, only those (or, with
    ``live=False``, all but those) held by a running process or too fresh to have a .pid."""
    parent, prefix = os.path.dirname(os.path.abspath(target)), _stage_prefix(target)
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix) and n.endswith(".mwconv-tmp")]
    except OSError:
        return []
    if live is None:
        return names

    def held(name):
        pid = _owner(os.path.join(parent, name), prefix)
        return runtime.alive(pid) if pid is not None else _age(os.path.join(parent, name)) < FRESH_SECONDS
    return [n for n in names if held(n) == live]


def sweep_leftovers(target):
    """Remove staging folders that killed runs left for ``target`` (their process is gone)."""
    parent = os.path.dirname(os.path.abspath(target))
    swept = [os.path.join(parent, name) for name in staging_folders(target, live=False)]
    for root in swept:
        shutil.rmtree(root, ignore_errors=True)
    return swept


def _no_space(error):
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if "ResourceExhausted" in type(error).__name__ and "OOM when allocating" not in str(error):
        return True                          # TensorFlow's word for a full disk (not for memory)
    return "No space left on device" in str(error)


@contextlib.contextmanager
def atomic_output(target, *, force=False, directory=False):
    """Yield a temporary sibling path; on success move it to ``target``. Leftovers of
    killed runs for the same target are swept first; a full disk is OutputRefused.

    >>> with atomic_output("model.keras", force=True) as tmp:   # doctest: +SKIP
    ...     model.save(tmp)
    """
    target = check_target(target, force)
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        sweep_leftovers(target)
        stage_root = tempfile.mkdtemp(prefix=f"{_stage_prefix(target)}{os.getpid()}.", suffix=".mwconv-tmp",
                                      dir=parent)
        runtime.register_staging(stage_root)
        with open(os.path.join(stage_root, ".pid"), "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
    except OSError as e:
        raise OutputRefused(f"cannot create a staging folder ({e.strerror})", path=target) from e
    staged = os.path.join(stage_root, os.path.basename(target))
    if directory:
        os.mkdir(staged)
    try:
        yield staged
        with runtime.critical():      # a signal now waits: the old artifact is never lost half-way
            _commit(staged, target, stage_root, force)
    except Exception as e:  # noqa: BLE001 - a full disk shows up as many types; others are re-raised
        if _no_space(e):
            raise OutputRefused("no space left on the device; nothing was written (free some space or choose "
                                "another output)", path=target) from e
        if isinstance(e, OutputRefused):
            raise
        if isinstance(e, OSError):
            raise OutputRefused(f"cannot write ({e.strerror or e})", path=target) from e
        raise
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)
        runtime.unregister_staging(stage_root)


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(src, dst, flags):
    """Linux's renameat2(2) through libc; False where the system or file system lacks it."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst)


def _fsync(path, folder=False):
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path):
    """fsync every file below ``path`` (or the file itself), then the folders, so that a
    committed artifact survives a power loss with its bytes."""
    if not os.path.isdir(path):
        _fsync(path)
        return
    for folder, _, files in os.walk(path, topdown=False):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder, folder=True)


def _exists_error(target):
    return OutputRefused("already exists (another run wrote it meanwhile); pass --force to replace it", path=target)


def _commit_new(staged, target):
    """Move ``staged`` to ``target`` only if nothing is there: never replaces a target that
    appeared since the check (a concurrent writer), whatever the timing."""
    try:
        if _renameat2(staged, target, RENAME_NOREPLACE):
            return
    except FileExistsError:
        raise _exists_error(target) from None
    if not os.path.isdir(staged):
        try:
            os.link(staged, target)          # fails if target exists: the no-replace of plain POSIX
        except FileExistsError:
            raise _exists_error(target) from None
        except OSError as e:                 # a file system without hard links: fall through
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
        else:
            os.remove(staged)
            return
    if os.path.lexists(target):              # no renameat2: the small window that remains
        raise _exists_error(target)
    os.rename(staged, target)


def _commit_replace(staged, target, stage_root):
    """Replace ``target`` (or create it) in one atomic step where the OS allows: ``os.replace``
    for a file, an exchange for folders (renameat2 RENAME_EXCHANGE); else move the old one
    aside first so that a failure can restore it. Concurrent forced writers: the last wins,
    and the target is always one whole artifact."""
    if not os.path.isdir(staged) and not os.path.isdir(target):
        os.replace(staged, target)
        return
    try:
        _commit_new(staged, target)
        return
    except OutputRefused:
        pass                                 # there already, or appeared meanwhile: replace it
    if _renameat2(staged, target, RENAME_EXCHANGE):
        _remove(staged)                      # now the previous artifact
        return
    backup = os.path.join(stage_root, ".previous")
    os.rename(target, backup)
    try:
        os.rename(staged, target)
    except OSError:
        os.rename(backup, target)
        raise
    _remove(backup)


def _commit(staged, target, stage_root, force=False):
    _fsync_tree(staged)
    if force:
        _commit_replace(staged, target, stage_root)
    else:
        _commit_new(staged, target)
    try:
        _fsync(os.path.dirname(target) or ".", folder=True)
    except OSError:                          # some file systems refuse fsync on a folder
        pass


def commit_file(staged, target):
    """Move one staged file to ``target`` (fsynced first, never replacing one): a part of an
    artifact committed ahead of the artifact itself, e.g. an ONNX model's external data."""
    _fsync(staged)
    _commit_new(staged, target)
