"""keras-hub preset folders, as ``save_to_preset`` writes them: ``config.json`` (the
backbone's class and constructor arguments), ``model.weights.h5`` (its weights, as Keras 3
writes them), and for a task ``task.json`` and ``task.weights.h5`` (the head's). Tokenizer
and preprocessor assets are not weights and are not read.

Tensors are named by the weights files' keys (``layers/reversible_embedding/vars/0``); in
a task preset the backbone's keys gain the backbone's place in the task
(``layers/bert_backbone/layers/...``), so that each names one weight of the task. Each key
matches a target's weight through the key qualified by its class (``key_aliases``): a
backbone preset fills the backbone inside a task, never the task's own head. The
architecture is rebuilt from the configs, audited first, with the memory its weights may
take bounded by what the weights files hold (``_compat.allocation_limit``): a config names
constructor arguments, so only building tells the sizes.
"""

import os
import re

from mwconv.errors import InputRejected
from mwconv.formats.base import Source, parse_json, read_text_file
from mwconv.formats.format import Format

CONFIG, WEIGHTS, TASK_CONFIG, TASK_WEIGHTS = "config.json", "model.weights.h5", "task.json", "task.weights.h5"
JSON_LIMIT = 16 << 20
BUDGET_SLACK, BUDGET_FLOOR = 1.25, 64 << 20


def _read_config(folder, name):
    path = os.path.join(folder, name)
    doc = parse_json(read_text_file(path, f"keras-hub {name}", limit=JSON_LIMIT), path, name)
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict) or not doc.get("class_name"):
        raise InputRejected(f"{name} is not a serialized keras-hub object (no class_name and config)", path=path)
    return doc


def names_keras_hub(doc):
    """Whether a parsed config.json names a keras-hub class (a Hugging Face one does not)."""
    return isinstance(doc, dict) and (str(doc.get("registered_name", "")).startswith("keras_hub>")
                                      or str(doc.get("module", "")).startswith("keras_hub."))


def is_preset(folder):
    """A folder holding a keras-hub ``config.json``."""
    path = os.path.join(folder, CONFIG)
    if not os.path.isfile(path):
        return False
    try:
        return names_keras_hub(_read_config(folder, CONFIG))
    except InputRejected:
        return False


def _snake(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class PresetSource(Source):
    format = "keras_hub_preset"
    has_architecture = True
    architecture_kind = "keras"

    def __init__(self, path):
        super().__init__(path)
        from mwconv.formats.hdf5 import HDF5Source
        self._config = _read_config(path, CONFIG)
        has_task = os.path.isfile(os.path.join(path, TASK_CONFIG))
        self._task = _read_config(path, TASK_CONFIG) if has_task else None
        self._parts, self._model, self._where = {}, None, {}
        prefix = f"layers/{_snake(self._config['class_name'])}/" if self._task else ""
        files = [(WEIGHTS, prefix)] + ([(TASK_WEIGHTS, "")] if self._task else [])
        try:
            for name, at in files:
                file = os.path.join(path, name)
                if not os.path.isfile(file):
                    if name == WEIGHTS:
                        raise InputRejected(f"the preset holds no {WEIGHTS}", path=path)
                    continue
                part = HDF5Source(file)
                self._parts[name] = part
                for key in part.keys():
                    if key.startswith("optimizer/"):       # a task's optimizer state: not a weight
                        continue
                    info = part.info(key)
                    self._infos[at + key] = info.__class__(at + key, info.shape, info.dtype)
                    self._where[at + key] = (part, key)
        except BaseException:
            self.close()
            raise
        self._metadata.update({"class": self._config["class_name"], "task": (self._task or {}).get("class_name"),
                               "files": sorted(self._parts)})

    def key_aliases(self):
        """Each key qualified by the class whose weights file it is in (``BertBackbone:layers/
        dense/vars/0``; in a task preset, the task's), which the targets' keys are too."""
        root = (self._task or self._config)["class_name"]
        return {name: f"{root}:{name}" for name in self._infos}

    def _read(self, name):
        part, key = self._where[name]
        return part.get_tensor(key)

    def _held_bytes(self):
        return sum(os.path.getsize(p.path) for p in self._parts.values())

    def audit(self):
        """Refuse a config that would run code (decided on the parsed configs, before building)."""
        from mwconv.formats.config_audit import refuse_code
        for doc, name in ((self._config, CONFIG), (self._task, TASK_CONFIG)):
            if doc is not None:
                refuse_code(doc, os.path.join(self.path, name))

    def architecture(self):
        """The backbone (or the task, its preprocessor left out) rebuilt from the preset's
        configs in safe mode, its weights bounded by the bytes the weights files hold."""
        if self._model is None:
            self.audit()
            config = self._config
            if self._task is not None:
                config = dict(self._task, config=dict(self._task["config"], preprocessor=None))
            self._model = build_bounded(config, self._held_bytes(), self.path)
        return self._model

    def release_architecture(self):
        self._model = None

    def close(self):
        for part in self._parts.values():
            part.close()


def target_model(path):
    """``--model`` as a keras-hub preset folder or a keras-hub ``config.json``/``task.json``:
    the backbone or task its config describes (a task's preprocessor left out), audited and
    built in safe mode with fresh weights (the preset's weights are read only when it is the
    source)."""
    from mwconv.formats.config_audit import refuse_code
    folder, name = (path, TASK_CONFIG if os.path.isfile(os.path.join(path, TASK_CONFIG)) else CONFIG) \
        if os.path.isdir(path) else os.path.split(path)
    if not os.path.isfile(os.path.join(folder, name)):
        raise InputRejected(f"is a folder holding no {CONFIG}: neither a keras-hub preset nor a model file", path=path)
    config = _read_config(folder, name)
    if not names_keras_hub(config):
        raise InputRejected(f"{name} names no keras-hub class (a Hugging Face config.json describes no Keras "
                            "model: pass the keras-hub backbone of the same configuration)", path=path)
    refuse_code(config, path)
    if isinstance(config["config"].get("preprocessor"), dict):
        config = dict(config, config=dict(config["config"], preprocessor=None))
    return build_bounded(config, None, path)


def build_bounded(config, held_bytes, path):
    """A model deserialized from ``config`` in safe mode, refused (exit 3) once its weights
    would take more than the ``held_bytes`` that back them (with slack; None: no bound)."""
    import contextlib

    from mwconv import _compat
    from mwconv.layers.conversion import stable_paths
    from mwconv.modelio import keras_api

    keras = keras_api()
    limit = None if held_bytes is None else int(BUDGET_SLACK * held_bytes) + BUDGET_FLOOR
    try:
        with _compat.allocation_limit(keras, limit) if limit is not None else contextlib.nullcontext():
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except _compat.AllocationExceeded as e:
        raise InputRejected(f"the {config.get('class_name')} config declares weights of at least {e.allocated:,} "
                            f"bytes, but the preset holds {held_bytes:,}: refused before allocating them (a corrupt "
                            "or hostile config)", path=path) from None
    except (ValueError, TypeError, KeyError, AttributeError, ImportError) as e:
        from mwconv.errors import inner_reason
        raise InputRejected(f"cannot rebuild the {config.get('class_name')} the preset describes "
                            f"({inner_reason(e)})", path=path) from e
    return stable_paths(model)


FORMAT = Format("keras_hub_preset", "keras-hub preset folder", (), None,
                "mwconv.formats.keras_hub_preset:PresetSource", "none (a source only)")
