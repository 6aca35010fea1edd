"""Artifacts under verification, behind one small interface:
weights (values and flags), manifest, inputs, running on a device, and a
trainable Keras model where the format gives one back."""

import json

import numpy as np

from mwconv.errors import InputRejected
from mwconv.sources import detect_format
from mwconv import modelio


class Artifact:
    kind = "?"
    trainable_flags = True   # whether the format itself records trainable flags

    def __init__(self, path):
        self.path = str(path)
        self.manifest = None

    def weights(self):
        """{path: (value, trainable or None)}, or None when the format's weights cannot be named like Keras's."""
        return None

    def input_specs(self):
        raise NotImplementedError

    def output_names(self):
        raise NotImplementedError

    def run(self, inputs, device=None):
        raise NotImplementedError

    def keras_model(self):
        """A fresh Keras model loaded from the artifact, or None."""
        return None

    def loaded_model(self):
        """The Keras model the artifact was loaded as (for inspection), or None."""
        return getattr(self, "model", None)

    def devices(self):
        return keras_devices()


def keras_devices():
    """Visible devices as Keras device names (cpu first)."""
    keras = modelio.keras_api()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return [d.name.replace("/device:", "").replace("/job:localhost/replica:0/task:0/", "")
                for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")]
    if backend == "torch":
        import torch
        return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if backend == "jax":
        import jax
        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    return ["cpu"]


class KerasArtifact(Artifact):
    kind = "keras"

    def __init__(self, path, model=None):
        super().__init__(path)
        from mwconv.sources.keras_file import check_keras_zip, load_keras_model
        _, self.manifest = check_keras_zip(self.path)
        self.model = model if model is not None else load_keras_model(self.path)

    def weights(self):
        return modelio.weights_by_path(self.model)

    def input_specs(self):
        return modelio.input_specs(self.model)

    def output_names(self):
        return modelio.output_names(self.model)

    def run(self, inputs, device=None):
        if device is None:
            return modelio.call_model(self.model, inputs)
        keras = modelio.keras_api()
        with keras.device(device):
            return modelio.call_model(self.model, inputs)

    def keras_model(self):
        from mwconv.sources.keras_file import load_keras_model
        return load_keras_model(self.path)


class WeightsOnlyArtifact(KerasArtifact):
    """Weights without an architecture: the model is the reference's, filled from the file."""

    def __init__(self, path, reference_model):
        Artifact.__init__(self, path)
        if reference_model is None:
            raise InputRejected(f"a {self.kind} file holds no architecture; pass --reference (a .keras file)",
                                path=path)
        self.manifest = self._read_manifest()
        self.reference_model = reference_model
        self.model = self.keras_model()

    def _flags(self):
        return {w["path"]: w["trainable"] for w in (self.manifest or {}).get("weights", [])}

    def weights(self):
        flags = self._flags()
        return {p: (v, flags.get(p)) for p, (v, _) in modelio.weights_by_path(self.model).items()}

    def keras_model(self):
        keras = modelio.keras_api()
        model = keras.models.clone_model(self.reference_model)
        self._fill(model)
        return model


class WeightsH5Artifact(WeightsOnlyArtifact):
    """A Keras 3 ``.weights.h5``; the architecture comes from the reference model."""

    kind = "weights_h5"

    def _read_manifest(self):
        import h5py
        with h5py.File(self.path, "r") as f:
            text = f.attrs.get("mwconv_manifest")
        return json.loads(text) if text is not None else None

    def _fill(self, model):
        try:
            model.load_weights(self.path)
        except (ValueError, OSError, KeyError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputRejected(f"does not load into the reference architecture ({first})", path=self.path) from e


class SafetensorsArtifact(WeightsOnlyArtifact):
    """A safetensors file of Keras weight paths; the architecture comes from the reference model.
    Its own tensors are compared (missing and extra names show in the partition check)."""

    kind = "safetensors"

    def _read_manifest(self):
        from mwconv.sources.safetensors_file import SafetensorsSource
        with SafetensorsSource(self.path) as src:
            return src.manifest()

    def weights(self):
        from mwconv.sources.safetensors_file import SafetensorsSource
        flags = self._flags()
        with SafetensorsSource(self.path) as src:
            return {n: (np.asarray(src.get_tensor(n)), flags.get(n)) for n in src.keys()}

    def _fill(self, model):
        from mwconv.sources.safetensors_file import SafetensorsSource
        with SafetensorsSource(self.path) as src:
            present = set(src.keys())
            for v in model.weights:
                if v.path in present and tuple(src.info(v.path).shape) == tuple(v.shape):
                    v.assign(src.get_tensor(v.path))


class SavedModelArtifact(Artifact):
    kind = "saved_model"

    def __init__(self, path):
        super().__init__(path)
        from mwconv.sources.saved_model import SavedModelSource
        from mwconv._quiet import import_quietly
        tf = import_quietly("tensorflow")
        self.source = SavedModelSource(self.path)
        self.manifest = self.source.manifest()
        self.loaded = tf.saved_model.load(self.path)
        if "serving_default" not in self.loaded.signatures:
            raise InputRejected("has no serving_default signature", path=self.path)
        self.fn = self.loaded.signatures["serving_default"]

    def weights(self):
        flags = self.source.partition()
        return {n: (np.asarray(self.source.get_tensor(n)), flags[n]) for n in self.source.keys()}

    def input_specs(self):
        _, kwargs = self.fn.structured_input_signature
        return [(name, tuple(spec.shape), spec.dtype.name) for name, spec in sorted(kwargs.items())]

    def output_names(self):
        return sorted(self.fn.structured_outputs)

    def run(self, inputs, device=None):
        import tensorflow as tf
        feed = {n: tf.constant(inputs[n]) for n, _, _ in self.input_specs()}
        if device is None:
            out = self.fn(**feed)
        else:
            with tf.device(device):
                out = self.fn(**feed)
        return [np.asarray(out[n]) for n in self.output_names()]


class OnnxArtifact(Artifact):
    kind = "onnx"
    trainable_flags = False

    def __init__(self, path):
        super().__init__(path)
        from mwconv.sources.onnx_file import OnnxSource
        self.source = OnnxSource(self.path)
        self.manifest = self.source.manifest()
        self._sessions = {}

    def _session(self, provider):
        if provider not in self._sessions:
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._sessions[provider] = ort.InferenceSession(self.path, options, providers=[provider])
        return self._sessions[provider]

    def input_specs(self):
        from onnx import helper
        init = {t.name for t in self.source.model.graph.initializer}
        specs = []
        for i in self.source.model.graph.input:
            if i.name in init:
                continue
            t = i.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            specs.append((i.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name))
        return specs

    def output_names(self):
        return [o.name for o in self.source.model.graph.output]

    def devices(self):
        import onnxruntime as ort
        available = ort.get_available_providers()
        return ["CPUExecutionProvider"] + [p for p in ("CUDAExecutionProvider",) if p in available]

    def run(self, inputs, device=None):
        sess = self._session(device or "CPUExecutionProvider")
        feed = {n: inputs[n] for n, _, _ in self.input_specs()}
        return [np.asarray(o) for o in sess.run(self.output_names(), feed)]


def open_artifact(path, reference_model=None):
    fmt = detect_format(path)
    if fmt == "keras":
        return KerasArtifact(path)
    if fmt == "saved_model":
        return SavedModelArtifact(path)
    if fmt == "onnx":
        return OnnxArtifact(path)
    if fmt == "hdf5":
        return WeightsH5Artifact(path, reference_model)
    if fmt == "safetensors":
        return SafetensorsArtifact(path, reference_model)
    raise InputRejected(f"a {fmt} file is not an artifact mwconv verifies (SavedModel, .keras, .weights.h5, .onnx, "
                        ".safetensors)",
                        path=path)
