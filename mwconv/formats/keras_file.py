"""``.keras`` files. The zip is checked for bombs, then the model is rebuilt
with ``keras.saving.load_model`` in safe mode (mwconv's layers registered), and
weights are listed by their Keras path with their trainable flag."""

import json
import os
import zipfile

import numpy as np

from mwconv.errors import InputRejected
from mwconv.errors import UsageError
from mwconv.formats.base import BOMB_FLOOR, BOMB_RATIO, Source
from mwconv.formats.format import Format
from mwconv.formats.sniff import zip_names
from mwconv.manifest import dumps
from mwconv.outputs import atomic_output

MANIFEST_MEMBER = "mwconv_manifest.json"


def check_keras_zip(path):
    """Refuse corrupt archives and members whose declared size is a zip bomb."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                if info.file_size > BOMB_FLOOR and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
                    raise InputRejected(f"declares {info.file_size} bytes from {info.compress_size} compressed: "
                                        "refused as a zip bomb", path=path, tensor=info.filename)
            bad = zf.testzip()
            if bad is not None:
                raise InputRejected("archive member fails its CRC check (corrupt)", path=path, tensor=bad)
            names = {i.filename for i in infos}
            config = json.loads(zf.read("config.json")) if "config.json" in names else None
            manifest = json.loads(zf.read(MANIFEST_MEMBER)) if MANIFEST_MEMBER in names else None
    except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError) as e:
        raise InputRejected(f"corrupt or truncated .keras archive ({e})", path=path) from e
    return config, manifest


def read_keras(path):
    """``(model, embedded manifest or None)``: the archive checked once, the model loaded once."""
    _, manifest = check_keras_zip(path)
    return load_keras_model(path, checked=True), manifest


def load_keras_model(path, compile=False, checked=False):
    """Load a ``.keras`` file in safe mode (the archive checked first unless ``checked``);
    expected failures become InputRejected."""
    if not checked:
        check_keras_zip(path)
    from mwconv._quiet import import_quietly
    keras = import_quietly("keras")
    import mwconv.layers  # noqa: F401  (registers the mixed layers)

    try:
        from mwconv.layers.conversion import stable_paths
        return stable_paths(keras.saving.load_model(path, safe_mode=True, compile=compile))
    except ValueError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safe_mode" in str(e) or "unsafe" in str(e).lower():
            raise InputRejected(f"needs unsafe deserialization, which is refused ({msg})", path=path) from e
        raise InputRejected(f"cannot rebuild the model ({msg})", path=path) from e
    except (TypeError, KeyError, OSError, AttributeError) as e:
        raise InputRejected(f"cannot rebuild the model ({type(e).__name__}: {e})", path=path) from e


class KerasSource(Source):
    format = "keras"
    has_architecture = True
    architecture_kind = "keras"

    def __init__(self, path, model=None):
        super().__init__(path)
        config, self._manifest = check_keras_zip(self.path)
        self.model = model if model is not None else load_keras_model(self.path, checked=True)
        trainable_ids = {id(v) for v in self.model.trainable_weights}
        self._vars = {}
        self._trainable = {}
        for v in self.model.weights:
            self._add(v.path, v.shape, v.dtype)
            self._vars[v.path] = v
            self._trainable[v.path] = id(v) in trainable_ids
        self._metadata["model_class"] = (config or {}).get("class_name")
        self._metadata["model_name"] = self.model.name
        self._metadata["layers"] = len(self.model.layers)

    def _read(self, name):
        return np.asarray(self._vars[name].numpy())

    def architecture(self):
        return self.model

    def run_model(self, inputs):
        from mwconv import modelio
        return modelio.call_model(self.model, inputs), None

    def release_architecture(self):
        self.model = None   # the variables stay reachable through _vars until injected

    def partition(self):
        return dict(self._trainable)

    def manifest(self):
        return self._manifest


# -- writing ----------------------------------------------------------------------
def save_keras(model, out, manifest, force=False):
    """Write a ``.keras`` file with the manifest as the zip member ``mwconv_manifest.json``."""
    if not str(out).endswith(".keras"):
        raise UsageError("a Keras model file must end with .keras", path=out)
    with atomic_output(out, force=force) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(MANIFEST_MEMBER, dumps(manifest))
    return os.path.abspath(out)


def write(model, out, manifest, options):
    save_keras(model, out, manifest, force=options.force)


def _sniff(path, head):
    names = zip_names(path, head)
    return names is not None and "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names)


FORMAT = Format("keras", "Keras .keras zip", (".keras",), _sniff, "mwconv.formats.keras_file:KerasSource",
                f"the {MANIFEST_MEMBER} zip member", records_trainable=True,
                artifact="mwconv.formats.artifact:KerasArtifact", write=write)
