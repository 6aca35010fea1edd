"""Turn the stock layers that hold frozen weights into their mixed
counterparts, so the frozen/trainable split is part of the model's config and
survives save and reload.

The conversion edits the model's serialized config and builds a new model from
it, so a caller that owns the original can drop it first: the weights then
exist once at a time (see ``import_weights``).
"""

from mwconv import _compat
from mwconv.errors import InputRejected


def _is_model(layer):
    import keras
    return isinstance(layer, keras.Model)


def _plan(layers, frozen_paths, prefix="", opted=frozenset(), whole=False):
    """{layer name: (mixed class or None, changes to its config)}, or for a nested model
    {name: ("nested", its own plan)}. A layer's frozen names are its own weights' names
    and, below its sub-layers, their paths (``lstm_cell/kernel``)."""
    from mwconv.layers.mixed import mixed_class_for

    plan = {}
    for layer in layers:
        own = f"{prefix}{layer.name}/"
        if _is_model(layer):
            inner = _plan(layer.layers, frozen_paths, own, opted, whole)
            if inner:
                plan[layer.name] = ("nested", inner)
            continue
        names = [v.path[len(own):] for v in layer.weights if v.path.startswith(own)]
        want = sorted(n for n in names if own + n in frozen_paths)
        mixed_cls = mixed_class_for(layer)
        if not want and not (mixed_cls is not None and isinstance(layer, mixed_cls)):
            continue
        if mixed_cls is not None:
            plan[layer.name] = (mixed_cls, {"frozen": want})
            if own[:-1] in opted:
                plan[layer.name][1]["update_statistics"] = True
        elif set(want) == set(names) or whole:
            plan[layer.name] = (None, {"trainable": False})
        else:
            raise InputRejected(
                f"layer '{layer.name}' ({type(layer).__name__}) is not a built-in Keras layer, so mwconv has no "
                f"mixed counterpart for it and freezes its weights all together or not at all; asked to freeze "
                f"{want} of {names}. Adjust --train/--freeze, or pass --allow-whole-layer-freeze to freeze it whole")
    return plan


ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def _apply(entries, plan, zero, originals):
    for entry in entries:
        name = entry["config"].get("name")
        for key in zero.get(name, ()):
            if key in entry["config"]:
                originals.setdefault(name, {})[key] = entry["config"][key]
                entry["config"][key] = dict(ZEROS)
        if name not in plan:
            continue
        cls, changes = plan[name]
        if cls == "nested":
            _apply(entry["config"]["layers"], changes, {}, originals)
            continue
        if cls is not None:
            entry.update({"module": cls.__module__, "class_name": cls.__name__,
                          "registered_name": f"mwconv>{cls.__name__}"})
        entry["config"].update(changes)


def mixed_config(model, frozen_paths, overwritten=(), update_statistics=frozenset(), whole=False):
    """The model's serialized config with every weight in ``frozen_paths`` frozen: each
    layer holding one becomes its mixed counterpart with ``frozen=[names]``, inside nested
    models too; a custom layer with no counterpart is frozen whole (``trainable=False``)
    when all its weights are to be frozen. Weights of top-level layers in ``overwritten``
    (about to be assigned) get a zeros initializer, which costs nothing to run. Layers whose
    path is in ``update_statistics`` keep updating their moving statistics while frozen."""
    import keras

    from mwconv.layers.in_place import freezes_in_place
    if freezes_in_place(model):      # its config holds no layers: frozen once built (layers.in_place)
        return keras.saving.serialize_keras_object(model), {}
    plan = _plan(model.layers, frozen_paths, opted=frozenset(update_statistics), whole=whole)
    config = keras.saving.serialize_keras_object(model)
    zero = {}
    for layer in model.layers:
        for v in _compat.own_variables(layer):
            if v.path in overwritten:
                zero.setdefault(layer.name, set()).add(f"{v.name}_initializer")
    originals = {}
    _apply(config["config"]["layers"], plan, zero, originals)
    return config, originals


def _leaf_layers(layers, prefix=""):
    """``(path, layer)`` of every layer that is not a model, nested models opened."""
    for layer in layers:
        if _is_model(layer):
            yield from _leaf_layers(layer.layers, f"{prefix}{layer.name}/")
        else:
            yield prefix + layer.name, layer


def unheld_freezes(model, frozen_paths):
    """``{layer path: [its weights still trainable]}``: the layers where a weight that
    should be frozen is trainable in ``model`` (built from its config). A custom layer
    frozen whole through its config (``trainable=False``) holds its own weights' flags, but
    not those of the sub-layers it creates in ``build()``: Keras gives the model those as
    trainable weights, and fit would train them."""
    trainable = {id(v) for v in model.trainable_weights}
    found = {}
    for path, layer in _leaf_layers(model.layers):
        loose = [v.path for v in layer.weights if v.path in frozen_paths and id(v) in trainable]
        if loose:
            found[path] = loose
    return found


def freeze_whole(model, layer_paths):
    """Freeze the layers at ``layer_paths`` whole: every layer inside them (the setter of a
    layer's ``trainable`` reaches only the sub-layers Keras tracks) and every weight."""
    layers = dict(_leaf_layers(model.layers))
    for path in layer_paths:
        if path in layers:
            for inner in _compat.flatten_layers(layers[path]):
                inner.trainable = False
            for v in layers[path].weights:
                v.trainable = False


def whole_frozen_layers(model):
    """The paths of the layers frozen whole that hold sub-layers with weights: their
    sub-layers' flags are not in any config, so the manifest records them and mwconv's
    loader applies them again (``freeze_whole``)."""
    return [path for path, layer in _leaf_layers(model.layers)
            if not layer.trainable and layer.weights and _compat.flatten_layers(layer, include_self=False)]


def statistics_layers(model):
    """``{layer path: [its weight paths]}`` of the layers that hold moving statistics
    (BatchNormalization, or a layer with one inside), nested models opened."""
    from mwconv.layers.statistics import has_statistics

    found = {}

    def walk(layers, prefix):
        for layer in layers:
            if _is_model(layer):
                walk(layer.layers, f"{prefix}{layer.name}/")
            elif has_statistics(layer):
                found[prefix + layer.name] = [v.path for v in layer.weights]

    walk(model.layers, "")
    return found


def restore_initializers(model, originals):
    """Put back the initializers ``mixed_config`` replaced, so the model's config is the user's."""
    import keras

    for name, keys in originals.items():
        layer = model.get_layer(name)
        for key, value in keys.items():
            setattr(layer, key, keras.initializers.deserialize(value))


def stable_paths(model):
    """Give every weight the path its place in the model spells, whatever route built it:
    the layer names from the model's top level down (nested models, an RNN's cell, a
    wrapped layer), then the weight's name: ``fc1/kernel``, ``bi/forward_lstm/lstm_cell/kernel``,
    ``backbone/conv1/kernel``. Keras 3 gives one weight different paths depending on how
    the model was built (a named Sequential's weights gain and lose the model's name), so
    mwconv names weights this way everywhere. Returns the model."""
    from mwconv.layers.mixin import nested_weights

    for layer in model.layers:
        for v in _compat.own_variables(layer):
            _compat.set_variable_path(v, f"{layer.name}/{v.name}")
        for name, v in nested_weights(layer).items():
            _compat.set_variable_path(v, f"{layer.name}/{name}")
    return model


def model_from_config(config):
    import keras

    import mwconv.layers  # noqa: F401  (registers the mixed layers)
    return stable_paths(keras.saving.deserialize_keras_object(config, safe_mode=True))


def check_same_paths(original_paths, model):
    missing = sorted(set(original_paths) - {v.path for v in model.weights})
    if missing:
        raise InputRejected(f"rebuilding the target model renamed weight '{missing[0]}'; give its layers fixed names")


def convert_to_mixed(model, frozen_paths):
    """A new model like ``model`` with every weight in ``frozen_paths`` frozen, values copied."""
    frozen_ids = {id(v) for v in model.weights if v.path in frozen_paths}
    stable_paths(model)          # the plan reads each weight's path below its layer
    frozen_paths = {v.path for v in model.weights if id(v) in frozen_ids}
    config, _ = mixed_config(model, frozen_paths)
    result = model_from_config(config)
    original = {v.path: v for v in model.weights}
    check_same_paths(original, result)
    for v in result.weights:
        v.assign(original[v.path])
    from mwconv.layers.in_place import freeze_in_place, freezes_in_place
    return freeze_in_place(result, frozen_paths) if freezes_in_place(result) else result
