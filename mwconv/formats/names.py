"""Format names and suffixes, importable without any framework."""

# export format -> suffix its artifact must end with ("" for a folder)
EXPORT_SUFFIXES = {
    "saved_model": "",
    "keras": ".keras",
    "weights_h5": ".weights.h5",
    "onnx": ".onnx",
    "safetensors": ".safetensors",
}
EXPORT_FORMATS = tuple(EXPORT_SUFFIXES)

# suffixes removed from a file name to get its stem (longest first)
_STEM_SUFFIXES = (".safetensors.index.json", ".weights.h5", ".safetensors", ".keras", ".hdf5", ".h5", ".npz",
                  ".npy", ".onnx", ".json")


def stem(path):
    """``models/resnet.weights.h5`` -> ``resnet``; ``serving/`` -> ``serving``.

    >>> stem("models/resnet.weights.h5"), stem("serving/"), stem("model.safetensors.index.json")
    ('resnet', 'serving', 'model')
    """
    import os

    name = os.path.basename(os.path.normpath(os.fspath(path)))
    lowered = name.lower()
    for suffix in _STEM_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name
