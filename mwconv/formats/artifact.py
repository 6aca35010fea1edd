"""Artifacts under verification, behind one small interface: weights (values
and flags), manifest, inputs, running on a device, and a trainable Keras model
where the format gives one back. Each format's module defines its own artifact;
the Keras-model ones (``.keras``, and weights files filled into the reference's
architecture) share the classes here."""

from mwconv import modelio
from mwconv.errors import InputRejected


class Artifact:
    kind = "?"
    trainable_flags = True   # whether the format itself records trainable flags
    tolerance = "exact"      # comparison class of its outputs (mwconv.verification.compare)

    def __init__(self, path):
        self.path = str(path)
        self.manifest = None

    def weights(self):
        """``(path, value, trainable or None)`` per weight, read one at a time; or None when the
        format's weights cannot be named like Keras's."""
        return None

    def weight(self, path):
        """One weight's value, read again (to describe a mismatch)."""
        return next(value for p, value, _ in self.weights() if p == path)

    def input_specs(self):
        raise NotImplementedError

    def output_names(self):
        raise NotImplementedError

    def run(self, inputs, device=None):
        raise NotImplementedError

    def keras_model(self):
        """A fresh Keras model loaded from the artifact, or None."""
        return None

    def model_for_training(self):
        """A Keras model of the artifact that the train-step check may train in place (the
        artifact's own loaded model where it has one: no second copy), or None."""
        return self.keras_model()

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

    def __init__(self, path, reference_model=None):
        super().__init__(path)
        from mwconv.formats.keras_file import KerasSource
        self.source = KerasSource(self.path)     # the archive checked once, the model loaded once
        self.model, self.manifest = self.source.model, self.source.manifest()

    def weights(self):
        return modelio.iter_weights(self.model)

    def input_specs(self):
        return modelio.input_specs(self.model)

    def output_names(self):
        return modelio.output_names(self.model)

    def model_for_training(self):
        model, self.model = self.model, None       # trained in place: a later run reloads the artifact
        return model

    def run(self, inputs, device=None):
        if self.model is None:
            self.model = self.keras_model()
        if device is None:
            return modelio.call_model(self.model, inputs)
        keras = modelio.keras_api()
        with keras.device(device):
            return modelio.call_model(self.model, inputs)

    def keras_model(self):
        from mwconv.formats.keras_file import load_keras_model
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
        return ((p, v, flags.get(p)) for p, v, _ in modelio.iter_weights(self.model))

    def keras_model(self):
        if hasattr(self.reference_model, "fresh"):          # the reference itself was released
            model = self.reference_model.fresh()
        else:
            model = modelio.keras_api().models.clone_model(self.reference_model)
        self._fill(model)
        return model

