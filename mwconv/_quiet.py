"""Silence TensorFlow's C++ and absl log noise unless verbose mode is on."""

import logging
import os
import warnings

VERBOSE = False


def quiet_tensorflow(verbose=None):
    """Call before importing tensorflow/keras/tf2onnx. Idempotent."""
    verbose = VERBOSE if verbose is None else verbose
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in ("tensorflow", "absl", "h5py", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # tf2onnx logs unsupported ops as errors; mwconv reports them itself
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf2onnx|tf_keras)(\.|$)")
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def import_quietly(name):
    """Import a heavy module (tensorflow, keras, tf_keras, tf2onnx) with the C++
    start-up chatter that TF_CPP_MIN_LOG_LEVEL cannot reach sent to /dev/null."""
    import importlib
    import sys

    quiet_tensorflow()
    if VERBOSE or name in sys.modules:
        return importlib.import_module(name)
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        return importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
