"""The tf-keras 2.x file kinds beside the full-model ``.h5``, rebuilt through the same
translator (``mwconv.legacy``), never by tf-keras's own loaders (no code from the file):

* a ``.keras`` archive written by tf-keras 2.13+ (``metadata.json`` says ``keras_version``
  2.x; Keras 3's loader fails on it with "Could not locate class 'Functional'"): its
  ``config.json`` is translated, the Keras 3 model built from it in safe mode, and the
  archive's ``model.weights.h5`` read by Keras's own layer-and-order scheme, which
  tf-keras's writer shares;
* a legacy SavedModel directory with ``keras_metadata.pb``: the root object's metadata
  holds the model config, which is translated and built; the weights are the checkpoint's
  variables, matched by name like any source's.
"""

import json
import os
import zipfile

from mwconv.errors import InputRejected, inner_reason

METADATA = "keras_metadata.pb"
METADATA_LIMIT = 256 << 20       # bytes of keras_metadata.pb parsed at most


def is_tf_keras_archive(path):
    """Whether the ``.keras`` archive at ``path`` was written by tf-keras 2.x (Keras 2)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if "metadata.json" not in zf.namelist() or zf.getinfo("metadata.json").file_size > 1 << 20:
                return False
            meta = json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
        return False
    return isinstance(meta, dict) and str(meta.get("keras_version", "")).startswith("2.")


def build_translated(config, path):
    """``(Keras 3 model, Translation)`` for a tf-keras model config, in safe mode."""
    from mwconv.layers.conversion import model_from_config
    from mwconv.legacy import translate
    translation = translate(config, path)
    try:
        return model_from_config(translation.config), translation
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise InputRejected(f"cannot rebuild the model stored in this file ({inner_reason(e)}); pass --model",
                            path=path) from e


def load_tf_keras_archive(path, config, weights):
    """A tf-keras ``.keras`` archive's model: ``config`` (its audited ``config.json``)
    translated and built, then ``weights`` (a path or file object of ``model.weights.h5``)
    loaded by Keras's own matching of layers to stored weights."""
    config = {k: v for k, v in config.items() if k not in ("compile_config", "build_config")}
    model, translation = build_translated(config, path)
    try:
        model.load_weights(weights)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise InputRejected(f"the archive's weights do not fit the rebuilt model ({inner_reason(e)})",
                            path=path, tensor="model.weights.h5") from e
    return model, translation


def saved_model_config(folder):
    """The model config of a legacy tf-keras SavedModel (``keras_metadata.pb``'s root
    object), or None when there is none or the root is not a Functional/Sequential model."""
    path = os.path.join(folder, METADATA)
    if not os.path.isfile(path):
        return None
    if os.path.getsize(path) > METADATA_LIMIT:
        raise InputRejected(f"{METADATA} is over {METADATA_LIMIT >> 20} MiB: refused", path=folder)
    from google.protobuf.message import DecodeError

    from mwconv._quiet import import_quietly
    import_quietly("tf_keras")
    from tf_keras.protobuf import saved_metadata_pb2
    saved = saved_metadata_pb2.SavedMetadata()
    try:
        with open(path, "rb") as f:
            saved.ParseFromString(f.read())
        root = next((n for n in saved.nodes if n.node_path == "root"), None)
        meta = json.loads(root.metadata) if root is not None else None
    except (DecodeError, ValueError, OSError) as e:
        raise InputRejected(f"corrupt {METADATA} ({e})", path=folder) from e
    if not isinstance(meta, dict):
        return None
    config = meta.get("model_config")
    if not isinstance(config, dict):
        config = {"class_name": meta.get("class_name"), "config": meta.get("config")}
    config = _plain(config)
    if config.get("class_name") not in ("Functional", "Model", "Sequential") or not isinstance(
            config.get("config"), dict) or not isinstance(config["config"].get("layers"), list):
        return None
    return config


def _plain(value):
    """tf-keras's SavedModel metadata writes tuples and shapes as ``{"class_name": "__tuple__"
    or "TensorShape", "items": [...]}`` and numbers shared objects (``shared_object_id``);
    its ``.h5`` configs write plain lists and no ids."""
    if isinstance(value, dict):
        if value.get("class_name") in ("__tuple__", "TensorShape") and set(value) == {"class_name", "items"}:
            return _plain(value["items"])
        return {k: _plain(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def saved_model_aliases(object_graph, names, config):
    """``{tensor: Keras 3 path}`` for the variables of a legacy tf-keras SavedModel whose
    layers sit inside nested models: TensorFlow names a variable after its own layer only
    (``conv/kernel``), the object graph says which nested model holds it (``root.layer-1``,
    a Sequential ``block``: ``block/conv/kernel``). ``names``: ``{node id: tensor name}``."""
    from mwconv.legacy.translate import MODEL_CLASSES, keras3_name
    prefixes = {0: ((), config)}
    queue = [0]
    while queue:                       # breadth first: the shortest chain of layer-N edges
        node = queue.pop(0)
        prefix, cfg = prefixes[node]
        layers = (cfg or {}).get("config", {}).get("layers") if isinstance(cfg, dict) else None
        for child in object_graph.nodes[node].children:
            if child.node_id in prefixes or not child.local_name.startswith("layer-") or not layers:
                continue
            try:
                entry = layers[int(child.local_name[len("layer-"):])]
            except (ValueError, IndexError):
                continue
            nested = isinstance(entry, dict) and entry.get("class_name") in MODEL_CLASSES
            name = (entry.get("config") or {}).get("name") if isinstance(entry, dict) else None
            prefixes[child.node_id] = ((*prefix, keras3_name(name)) if nested and isinstance(name, str) else prefix,
                                       entry if nested else None)
            queue.append(child.node_id)
    aliases = {}
    for holder, (prefix, _) in prefixes.items():
        if not prefix:
            continue
        for child in object_graph.nodes[holder].children:
            tensor = names.get(child.node_id)
            if tensor is not None and tensor not in aliases:
                aliases[tensor] = "/".join((*prefix, tensor))
    return aliases
