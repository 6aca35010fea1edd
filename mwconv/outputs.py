"""Atomic outputs: stage in a temporary sibling, move into place at the end.

An interrupted or failed run never leaves a partial artifact at the target and
never damages an existing one; existing outputs need ``force=True``.
"""

import contextlib
import os
import shutil
import tempfile

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


@contextlib.contextmanager
def atomic_output(target, *, force=False, directory=False):
    """Yield a temporary sibling path; on success move it to ``target``.

    >>> with atomic_output("model.keras", force=True) as tmp:   # doctest: +SKIP
    ...     model.save(tmp)
    """
    target = check_target(target, force)
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        stage_root = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".mwconv-tmp", dir=parent)
    except OSError as e:
        raise OutputRefused(f"cannot create a staging folder ({e.strerror})", path=target) from e
    staged = os.path.join(stage_root, os.path.basename(target))
    if directory:
        os.mkdir(staged)
    try:
        yield staged
        _commit(staged, target, stage_root)
    except OSError as e:
        raise OutputRefused(f"cannot write ({e.strerror or e})", path=target) from e
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)


def _commit(staged, target, stage_root):
    if not os.path.lexists(target):
        os.rename(staged, target)
        return
    # replace: move the old one aside first so a failure can restore it
    backup = os.path.join(stage_root, ".previous")
    os.rename(target, backup)
    try:
        os.rename(staged, target)
    except OSError:
        os.rename(backup, target)
        raise
    _remove(backup)
