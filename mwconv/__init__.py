"""mwconv: bring pretrained weights into Keras 3 models with frozen and
trainable parts, export them, and prove the export kept the partition.

Importing ``mwconv`` is cheap: TensorFlow, Keras and ONNX load only when a
function that needs them is called.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_model": "mwconv.loading",
    "open_source": "mwconv.formats",
    "detect_format": "mwconv.formats",
    "inspect_source": "mwconv.inspect",
    "write_fixtures": "mwconv.fixtures",
    "import_weights": "mwconv.convert.importer",
    "export": "mwconv.convert.exporter",
    "verify": "mwconv.verification",
    "run_pipeline": "mwconv.pipeline",
    "load_pipeline": "mwconv.pipeline",
    "set_trainable": "mwconv.training",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mwconv' has no attribute {name!r}")
