"""HDF5 sources: Keras 3 ``.weights.h5``, tf.keras 2.x legacy weights and
full-model files, and generic trees of datasets. h5py datasets are lazy, so a
tensor is only read when asked for."""

import dataclasses
import json

import h5py
import numpy as np

from mwconv.errors import InputRejected, inner_reason
from mwconv.formats.artifact import WeightsOnlyArtifact
from mwconv.formats.base import Source, parse_json
from mwconv.formats.format import Format
from mwconv.formats.sniff import HDF5_MAGIC
from mwconv.manifest import dumps
from mwconv.outputs import atomic_output

MANIFEST_ATTR = "mwconv_manifest"


def _attr_strings(obj, key):
    vals = obj.attrs.get(key)
    if vals is None:
        return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in np.asarray(vals).ravel()]


def _attr_text(obj, key):
    val = obj.attrs.get(key)
    if isinstance(val, bytes):
        return val.decode("utf8")
    return None if val is None else str(val)


H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError, IndexError)


def _resolves(f, name):
    """Whether a soft link leads to an object in the file (a cycle makes h5py raise)."""
    try:
        return f.get(name) is not None
    except (RuntimeError, SystemError, KeyError, OSError, RecursionError):
        return False


def _keras3_key(layer, weight):
    """Where Keras 3 keeps a tf-keras weight: the layer group, then the weight's name below
    the layer's own (``conv1/conv`` + ``conv1/conv/kernel:0`` -> ``conv1/conv/kernel``)."""
    weight = weight[:-2] if weight.endswith(":0") else weight
    return f"{layer}/{weight[len(layer) + 1:] if weight.startswith(layer + '/') else weight}"


class HDF5Source(Source):
    format = "hdf5"

    def __init__(self, path):
        super().__init__(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise InputRejected(f"corrupt or truncated HDF5 file ({e})", path=path) from e
        try:
            self._check_links()
            self._datasets, self._aliases = {}, {}
            self._open()
        except H5_ERRORS as e:      # a damaged B-tree, heap or header: h5py raises many kinds
            self._file.close()
            raise InputRejected(f"corrupt HDF5 structure ({type(e).__name__}: {e})", path=path) from e
        except BaseException:
            self._file.close()
            raise

    # -- safety ------------------------------------------------------------
    def _check_links(self):
        f = self._file
        bad = []

        def visit(name, link):
            if isinstance(link, h5py.ExternalLink):
                bad.append((name, f"external link to {link.filename}:{link.path}: refused (it reads another file)"))
            elif isinstance(link, h5py.SoftLink) and not _resolves(f, name):
                bad.append((name, f"soft link to '{link.path}' that leaves the file, dangles or loops: refused"))

        f.visititems_links(visit)
        if bad:
            raise InputRejected(bad[0][1], path=self.path, tensor=bad[0][0])

    def _check_dataset(self, name, ds):
        if ds.is_virtual:
            raise InputRejected("virtual dataset (maps other files): refused", path=self.path, tensor=name)
        if ds.id.get_create_plist().get_external_count():
            raise InputRejected("external raw storage (data lives in another file): refused", path=self.path, tensor=name)
        info = self._add(name, ds.shape, ds.dtype)
        present = ds.id.get_storage_size()
        self._check_backed(name, present, "bytes are stored for it")
        if ds.compression is None and ds.chunks is None and info.nbytes and present < info.nbytes:
            raise InputRejected(f"declares {info.nbytes} bytes but only {present} are stored (truncated)",
                                path=self.path, tensor=name)

    # -- layout ------------------------------------------------------------
    def _open(self):
        f = self._file
        self._manifest = parse_json(_attr_text(f, MANIFEST_ATTR) or None, self.path, f"{MANIFEST_ATTR} attribute")
        if "model_weights" in f and "model_config" in f.attrs:
            self.kind = "keras-full-model"
            self.has_architecture = True
            config = parse_json(_attr_text(f, "model_config"), self.path, "model_config attribute")
            if not isinstance(config, dict):
                raise InputRejected("the model_config attribute is not a JSON object", path=self.path)
            self._metadata["model_class"] = config.get("class_name")
            self._metadata["keras_version"] = _attr_text(f, "keras_version")
            self._metadata["backend"] = _attr_text(f, "backend")
            self._legacy(f["model_weights"])
        elif "layer_names" in f.attrs:
            self.kind = "keras-legacy-weights"
            self._metadata["keras_version"] = _attr_text(f, "keras_version")
            self._metadata["backend"] = _attr_text(f, "backend")
            self._legacy(f)
        else:
            self.kind = "keras3-weights" if "layers" in f or "vars" in f else "generic"
            self._generic(f)
        self._metadata["kind"] = self.kind

    def _legacy(self, root):
        layer_names = _attr_strings(root, "layer_names") or []
        self._metadata["layer_names"] = layer_names
        for layer in layer_names:
            group = root.get(layer)
            if not isinstance(group, h5py.Group):
                raise InputRejected(f"layer_names lists '{layer}', which the file holds no group for (corrupt)",
                                    path=self.path, tensor=layer)
            for weight in _attr_strings(group, "weight_names") or []:
                name = f"{layer}/{weight}"
                self._aliases[name] = _keras3_key(layer, weight)
                ds = group.get(weight)
                if not isinstance(ds, h5py.Dataset):
                    raise InputRejected("weight_names lists it, but the file holds no dataset for it (corrupt)",
                                        path=self.path, tensor=name)
                self._check_dataset(name, ds)
                self._datasets[name] = ds

    def _generic(self, root):
        skipped = []

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            if obj.dtype.kind not in "biufc":
                skipped.append(name)
                return
            self._check_dataset(name, obj)
            self._datasets[name] = obj

        root.visititems(visit)
        if skipped:
            self._metadata["non_numeric_datasets_skipped"] = skipped

    # -- interface ---------------------------------------------------------
    def _read(self, name):
        try:
            return self._datasets[name][()]
        except H5_ERRORS as e:
            raise InputRejected(f"cannot read data ({e})", path=self.path, tensor=name) from e

    @property
    def architecture_kind(self):
        return "keras" if self.has_architecture else None

    def key_aliases(self):
        return dict(self._aliases)

    def describe_architecture(self):
        """The stored model's layers by class, and what importing it translates or refuses."""
        if not self.has_architecture:
            return None
        from mwconv.legacy import summarize
        version = self._metadata.get("keras_version") or ""
        return summarize(self._stored_config(), self.path, legacy=not version.startswith("3."))

    def _stored_config(self):
        config = parse_json(_attr_text(self._file, "model_config"), self.path, "model_config attribute")
        return config if isinstance(config, dict) else {}

    def architecture(self):
        """A Keras full-model .h5 rebuilt in safe mode: a tf.keras 2.x config through
        mwconv's translator, a Keras 3 one by ``keras.saving.load_model``."""
        if not self.has_architecture:
            return super().architecture()
        from mwconv.formats.tf_keras_files import build_translated
        from mwconv.layers.conversion import stable_paths
        from mwconv.modelio import keras_api
        keras = keras_api()
        version = self._metadata.get("keras_version") or ""
        self.audit()
        if not version.startswith("3."):
            model, self.translation = build_translated(self._stored_config(), self.path)
            return model
        try:
            return stable_paths(keras.saving.load_model(self.path, compile=False, safe_mode=True))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise InputRejected(f"cannot rebuild the model stored in this file ({inner_reason(e)}); pass --model",
                                path=self.path) from e

    def audit(self):
        """Refuse (exit 3) a stored config that would run code or that declares weights the
        file's tensors cannot back; decided on the parsed config, before anything is built."""
        from mwconv.formats.config_audit import check_declared_sizes, refuse_code
        config = self._stored_config()
        refuse_code(config, self.path)
        check_declared_sizes(config, sum(i.nbytes for i in self._infos.values()), self.path)
        return config

    def tf_keras_model(self):
        """``(model, None)``: the full-model .h5 rebuilt by tf-keras from the config audited here
        (never from the file a second time) in tf-keras's safe mode, its weights then read;
        or ``(None, reason)``."""
        if not self.has_architecture:
            return None, f"a {self.format} source without architecture cannot run"
        try:
            config = self.audit()
        except InputRejected as e:
            return None, f"the source is not run: {e.reason}"
        from mwconv import _compat
        from mwconv._quiet import import_quietly
        tf_keras = import_quietly("tf_keras")
        try:
            with _compat.tf_keras_safe_mode():
                model = tf_keras.models.model_from_json(json.dumps(config))
            model.load_weights(self.path)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            return None, f"tf-keras cannot rebuild the source ({inner_reason(e)})"
        return model, None

    def run_model(self, inputs):
        """A Keras full-model .h5 run by tf-keras itself (``tf_keras_model``)."""
        if not self.has_architecture:
            return super().run_model(inputs)
        model, reason = self.tf_keras_model()
        if model is None:
            return None, reason
        names = [t.name.split(":")[0] for t in model.inputs]
        if not all(n in inputs for n in names):
            return None, f"the source's inputs {names} are not the artifact's"
        feed = [inputs[n] for n in names]
        out = model(feed if len(feed) > 1 else feed[0], training=False)
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])], None

    def manifest(self):
        return self._manifest

    def close(self):
        self._file.close()


# -- writing a Keras 3 .weights.h5 -----------------------------------------------
# -- weights .h5 ---------------------------------------------------------------------
def _write_weights(model, staged, manifest):
    model.save_weights(staged)
    with h5py.File(staged, "a") as f:
        f.attrs["mwconv_manifest"] = dumps(manifest)


def write(model, out, manifest, options):
    """Keras's own ``save_weights`` layout, the manifest as a root attribute."""
    with atomic_output(out, force=options.force) as staged:
        _write_weights(model, staged, manifest)


# -- verifying ----------------------------------------------------------------------
class WeightsH5Artifact(WeightsOnlyArtifact):
    """A Keras 3 ``.weights.h5``; the architecture comes from the reference model."""

    kind = "weights_h5"

    def _read_manifest(self):
        with HDF5Source(self.path) as src:
            return src.manifest()

    def _fill(self, model):
        try:
            model.load_weights(self.path)
        except (ValueError, OSError, KeyError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputRejected(f"does not load into the reference architecture ({first})", path=self.path) from e



def _sniff(path, head):
    return head.startswith(HDF5_MAGIC)


HDF5 = Format("hdf5", "HDF5", (".h5", ".hdf5"), _sniff, "mwconv.formats.hdf5:HDF5Source",
              f"the {MANIFEST_ATTR} root attribute", artifact="mwconv.formats.hdf5:WeightsH5Artifact")
WEIGHTS_H5 = dataclasses.replace(HDF5, name="weights_h5", title="Keras 3 .weights.h5", sniff=None, write=write)
