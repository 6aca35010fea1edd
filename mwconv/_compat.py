"""The framework internals mwconv reaches into, behind one door. Each function says what it
touches, why no public hook serves, and the versions it was checked against; a test
(``tests/test_compat.py``) fails with a clear message when a release moves one."""

import contextlib


@contextlib.contextmanager
def tf_keras_safe_mode():
    """tf-keras's safe mode for a config rebuilt with ``model_from_json``: a ``Lambda`` with
    Python bytecode raises instead of running. tf-keras's legacy HDF5 path never sets it, and
    its public ``load_model(safe_mode=True)`` applies it to ``.keras`` archives only.
    Reaches into ``tf_keras.src.saving.serialization_lib.SafeModeScope`` (tf-keras 2.16 to
    2.21). mwconv audits the config before this (``formats.config_audit``): the scope is the
    second lock, and without it the first still holds."""
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:            # a tf-keras without it: the audit alone decides
        yield
        return
    with SafeModeScope(True):
        yield
