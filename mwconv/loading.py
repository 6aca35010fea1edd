"""``mwconv.load_model``: load a ``.keras`` file that uses mwconv's layers."""

import os

from mwconv.errors import UsageError


def load_model(path, *, compile=False):
    """Load a ``.keras`` file written by mwconv (or any that uses its layers), in
    Keras safe mode, with mwconv's layers registered. Works under every Keras
    backend; TensorFlow is not needed.

    >>> model = mwconv.load_model("model.keras")               # doctest: +SKIP
    >>> [w.path for w in model.trainable_weights]
    ['head/kernel', 'head/bias']

    Raises InputRejected (corrupt archive, unsafe content) or UsageError (not a .keras file).
    """
    from mwconv.formats.detect import detect_format

    fmt = detect_format(path)
    if fmt != "keras":
        hint = " (load a SavedModel with tf.saved_model.load)" if fmt == "saved_model" else ""
        raise UsageError(f"load_model reads .keras files; this is {fmt}{hint}", path=os.fspath(path))
    from mwconv.formats.keras_file import load_keras_model
    return load_keras_model(path, compile=compile)
