"""``.keras`` files. The zip is checked for bombs, then the model is rebuilt
with ``keras.saving.load_model`` in safe mode (mwconv's layers registered), or, for an
archive tf-keras 2.x wrote, through mwconv's translator (``tf_keras_files``), and
weights are listed by their Keras path with their trainable flag."""

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib

import numpy as np

from mwconv.errors import InputRejected, os_reason
from mwconv.errors import UsageError
from mwconv.formats.base import BOMB_FLOOR, BOMB_RATIO, Source
from mwconv.formats.format import Format
from mwconv.formats.sniff import zip_names
from mwconv.manifest import dumps
from mwconv.outputs import atomic_output

MANIFEST_MEMBER = "mwconv_manifest.json"


def check_keras_zip(path, crc_skip=()):
    """Refuse corrupt archives and members whose declared size is a zip bomb. Every member's
    CRC is checked except those in ``crc_skip`` (checked by the caller while it reads them)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                if info.file_size > BOMB_FLOOR and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
                    raise InputRejected(f"declares {info.file_size} bytes from {info.compress_size} compressed: "
                                        "refused as a zip bomb", path=path, tensor=info.filename)
            for info in infos:
                if info.filename not in crc_skip:
                    try:
                        with zf.open(info) as member:
                            while member.read(1 << 24):
                                pass
                    except zipfile.BadZipFile as e:
                        raise InputRejected("archive member fails its CRC check (corrupt)", path=path,
                                            tensor=info.filename) from e
                    except zlib.error as e:
                        raise InputRejected(f"archive member cannot be decompressed (corrupt: {e})", path=path,
                                            tensor=info.filename) from e
            names = {i.filename for i in infos}
            config = json.loads(zf.read("config.json")) if "config.json" in names else None
            manifest = json.loads(zf.read(MANIFEST_MEMBER)) if MANIFEST_MEMBER in names else None
    except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError) as e:
        raise InputRejected(os_reason(e) or f"corrupt or truncated .keras archive ({e})", path=path) from e
    return config, manifest


def audit_config(path, config):
    """The archive's ``config.json`` refused (exit 3) before anything is built when it would
    run code or declares weights that the archive's members cannot hold."""
    from mwconv.formats.config_audit import check_declared_sizes, refuse_code
    if config is None:
        return
    refuse_code(config, path)
    with zipfile.ZipFile(path) as zf:
        held = sum(i.file_size for i in zf.infolist() if i.filename not in ("config.json", "metadata.json"))
    check_declared_sizes(config, held, path, where="the archive")


def read_keras(path):
    """``(model, embedded manifest or None)``: the archive checked once, the model loaded once."""
    model, _, manifest = load_keras(path)
    return model, manifest


def load_keras_model(path, compile=False):
    """Load a ``.keras`` file in safe mode, the archive checked first; expected failures
    become InputRejected."""
    return load_keras(path, compile)[0]


def load_keras(path, compile=False):
    """``(model, config, manifest or None)``. Without ``compile``, an archive whose weights are
    stored uncompressed is read in place (``keras_zip``), its CRC checked alongside."""
    from mwconv._quiet import import_quietly
    keras = import_quietly("keras")
    stored = None if compile else _in_place(path)
    from mwconv.formats.keras_zip import WEIGHTS_MEMBER, CrcCheck
    config, manifest = check_keras_zip(path, (WEIGHTS_MEMBER,) if stored else ())
    audit_config(path, config)
    crc = CrcCheck(path, *stored) if stored else None
    import mwconv.layers  # noqa: F401  (registers the mixed layers)
    from mwconv.layers.conversion import stable_paths

    from mwconv.formats.tf_keras_files import is_tf_keras_archive
    if config is not None and is_tf_keras_archive(path):
        model = _load_tf_keras(path, config, stored)
        _check_crc(crc, path)
        return stable_paths(model), config, manifest
    try:
        with _bounded(keras, path):
            model = _load_in_place(keras, path, config, stored) if stored else \
                keras.saving.load_model(path, safe_mode=True, compile=compile)
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as e:
        _check_crc(crc, path, e)
        raise _rebuild_error(e, path) from e
    _check_crc(crc, path)
    return _frozen_again(stable_paths(model), manifest), config, manifest


@contextlib.contextmanager
def _bounded(keras, path):
    """Building may allocate what the archive's members hold (with slack), no more: a
    keras-hub config names constructor arguments, whose sizes the config audit cannot count."""
    from mwconv import _compat
    from mwconv.formats.keras_hub_preset import BUDGET_FLOOR, BUDGET_SLACK
    with zipfile.ZipFile(path) as zf:
        held = sum(i.file_size for i in zf.infolist() if i.filename not in ("config.json", "metadata.json"))
    try:
        with _compat.allocation_limit(keras, int(BUDGET_SLACK * held) + BUDGET_FLOOR):
            yield
    except _compat.AllocationExceeded as e:
        raise InputRejected(f"the model's config declares weights of at least {e.allocated:,} bytes, but the "
                            f"archive holds {held:,}: refused before allocating them (a corrupt or hostile "
                            "config)", path=path) from None


def _frozen_again(model, manifest):
    """Freeze again what no config holds: the custom layers the manifest says were frozen
    whole (``layers.conversion.whole_frozen_layers``), and the whole partition of a model
    that freezes in place (``layers.in_place``)."""
    from mwconv.layers.in_place import freeze_from_manifest
    if isinstance(manifest, dict):
        freeze_from_manifest(model, manifest)       # a keras-hub Backbone or Task: its whole partition
    layers = (manifest or {}).get("frozen_layers") if isinstance(manifest, dict) else None
    if isinstance(layers, list):
        from mwconv.layers.conversion import freeze_whole
        freeze_whole(model, [p for p in layers if isinstance(p, str)])
    return model


def _check_crc(crc, path, cause=None):
    """A corrupt weights member explains any failure to rebuild: it is reported first."""
    from mwconv.formats.keras_zip import WEIGHTS_MEMBER
    problem = crc.result() if crc is not None else None
    if problem:
        raise InputRejected(f"archive member {problem}", path=path, tensor=WEIGHTS_MEMBER) from cause


def _rebuild_error(e, path):
    if isinstance(e, ValueError):
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safe_mode" in str(e) or "unsafe" in str(e).lower():
            return InputRejected(f"needs unsafe deserialization, which is refused ({msg})", path=path)
        return InputRejected(f"cannot rebuild the model ({msg})", path=path)
    return InputRejected(f"cannot rebuild the model ({type(e).__name__}: {e})", path=path)


def _in_place(path):
    """The weights member's ``(offset, info)`` when the model can be loaded in place: weights
    stored uncompressed, no assets (Keras's loader reads those) and a Keras whose
    ``load_weights`` takes a file object (3.12 and later), else None."""
    import keras

    from mwconv.formats.keras_zip import stored_member
    if tuple(int(p) for p in keras.version().split(".")[:2]) < (3, 12):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            if any(n.startswith("assets/") for n in zf.namelist()) or "config.json" not in zf.namelist():
                return None
        return stored_member(path)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None      # check_keras_zip names the problem


def _load_in_place(keras, path, config, stored):
    """Build the model from its config and read its weights from the member where it lies."""
    from mwconv import _compat
    from mwconv.formats.keras_zip import StoredMember
    if config is None:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    config = dict(config, compile_config=None)
    with _compat.object_sharing_scope(), _compat.variables_start_as_zeros(keras):
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    member = StoredMember(path, stored[0], stored[1].file_size)
    try:
        model.load_weights(member)        # Keras's own matching of layers to stored weights
    finally:
        member.close()
    return model


def _load_tf_keras(path, config, stored):
    """A tf-keras 2.x archive through mwconv's translator, its weights read in place where
    they are stored uncompressed, else from a copy in the run's private temp folder."""
    from mwconv.formats.keras_zip import WEIGHTS_MEMBER, StoredMember
    from mwconv.formats.tf_keras_files import load_tf_keras_archive
    if stored:
        member = StoredMember(path, stored[0], stored[1].file_size)
        try:
            return load_tf_keras_archive(path, config, member)[0]
        finally:
            member.close()
    with tempfile.TemporaryDirectory() as tmp:      # the run's private temp folder in the CLI
        copy = os.path.join(tmp, "tf_keras.weights.h5")
        try:
            with zipfile.ZipFile(path) as zf, zf.open(WEIGHTS_MEMBER) as src, open(copy, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
        except KeyError as e:
            raise InputRejected("the archive has no model.weights.h5", path=path) from e
        return load_tf_keras_archive(path, config, copy)[0]


class KerasSource(Source):
    format = "keras"
    has_architecture = True
    architecture_kind = "keras"

    def __init__(self, path, model=None):
        super().__init__(path)
        if model is None:
            model, config, self._manifest = load_keras(self.path)
        else:
            config, self._manifest = check_keras_zip(self.path)
        self.model = model
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
