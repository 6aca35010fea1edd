"""The reference side of a verification, summarised once: weight hashes, input
specs, output names, the probe and the reference's outputs on it. A reference
that verify loaded itself (a path) is then released before the artifact is
loaded, so one model is in memory at a time; values are read again from the
reference file only to describe a mismatch."""

from mwconv import modelio
from mwconv.verification import probes
from mwconv.verification.partition import entries_from_model, untracked_problems


class Reference:
    """``model``: the Keras model; ``path``: the file it came from (None for an in-memory model,
    which is never released); ``label``: how reports name it; ``entries``: the weights' summary
    when the caller has made it already (``entries_from_model``)."""

    def __init__(self, model, label, path=None, entries=None):
        self.model, self.label, self.path = model, label, path
        self.name = model.name
        self.specs = modelio.input_specs(model)
        self.names = modelio.output_names(model)
        self.vocab = probes.vocabulary(model)
        self.untracked_items = list(modelio.untracked_variables(model))
        self.untracked = untracked_problems(self.untracked_items, None)
        self._serialized = None
        self.entries = entries
        self.outputs = None
        self.floors = None       # the noise floor per output (floor.py), measured with the outputs

    def summarize(self, probe, want_entries=True, want_outputs=True, want_architecture=False):
        """Hash the weights and run the probe (what the checks need from the model)."""
        if want_entries and self.entries is None:
            self.entries = entries_from_model(self.model)
        if want_outputs:
            from mwconv.verification import floor
            self.outputs = modelio.call_model(self.model, probe)
            self.floors = floor.floors(lambda x: modelio.call_model(self.model, x), probe, self.outputs)
        if want_architecture:
            import keras
            self._serialized = keras.saving.serialize_keras_object(self.model)

    def release(self):
        """Drop the model when this verification loaded it; a mismatch then reloads the file."""
        if self.path is None or self.model is None:
            return
        self.model = None
        reloaded = {}

        def reload(path):
            def load():
                if "model" not in reloaded:
                    from mwconv.formats import open_source
                    with open_source(self.path) as src:
                        reloaded["model"] = src.architecture()
                import numpy as np
                keras = modelio.keras_api()
                variable = next(v for v in reloaded["model"].weights if v.path == path)
                return np.asarray(keras.ops.convert_to_numpy(variable.value))
            return load

        for path, entry in (self.entries or {}).items():
            entry["load"] = reload(path)
        modelio.release_memory()

    def for_artifact(self):
        """What a weights-only artifact fills: the model itself while held, else a fresh
        architecture built from its config."""
        if self.model is not None:
            return self.model
        return FreshArchitecture(self._serialized)


class FreshArchitecture:
    """Builds the reference's architecture anew (fresh weights) from its serialized config."""

    def __init__(self, serialized):
        self.serialized = serialized

    def fresh(self):
        import copy

        from mwconv.layers.conversion import model_from_config
        return model_from_config(copy.deepcopy(self.serialized))  # deserializing pops keys
