"""Turn the stock layers that hold frozen weights into their mixed
counterparts, so the frozen/trainable split is part of the model's config and
survives save and reload.

The conversion edits the model's serialized config and builds a new model from
it, so a caller that owns the original can drop it first: the weights then
exist once at a time (see ``import_weights``).
"""

from mwconv.errors import InputRejected


def _stock_trainable_names(layer):
    if hasattr(layer, "stock_trainable_names"):
        return layer.stock_trainable_names()
    return [v.name for v in layer._trainable_variables]


def _plan(model, frozen_paths):
    """{layer name: (mixed class or None, changes to its config)}"""
    from mwconv.layers import MIXED_FOR_STOCK

    plan = {}
    for layer in model.layers:
        stock_names = _stock_trainable_names(layer)
        paths = {v.name: v.path for v in layer._trainable_variables + layer._non_trainable_variables}
        nested = [v for v in layer.weights if v.path in frozen_paths and v.name not in paths]
        if nested:
            raise InputRejected(f"layer '{layer.name}' is a nested model or holds sub-layers; freezing weights "
                                f"inside it ({nested[0].path}) is not supported yet")
        want = sorted(n for n in stock_names if paths.get(n) in frozen_paths)
        mixed_cls = MIXED_FOR_STOCK.get(type(layer).__name__)
        is_mixed = mixed_cls is not None and isinstance(layer, mixed_cls)
        if not want and not is_mixed:
            continue
        if mixed_cls is not None:
            plan[layer.name] = (mixed_cls, {"frozen": want})
        elif set(want) == set(stock_names):
            plan[layer.name] = (None, {"trainable": False})
        else:
            raise InputRejected(
                f"layer '{layer.name}' ({type(layer).__name__}) has no mixed counterpart, so its weights are "
                f"frozen all together or not at all; asked to freeze {want} of {stock_names}. "
                "Adjust --train/--freeze")
    return plan


ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def mixed_config(model, frozen_paths, overwritten=()):
    """The model's serialized config with every weight in ``frozen_paths`` frozen:
    layers with a mixed counterpart get ``frozen=[names]``; a layer without one
    is frozen whole (``trainable=False``) when all its weights are to be frozen.
    Weights in ``overwritten`` (about to be assigned) get a zeros initializer,
    which costs nothing to run."""
    import keras

    if not isinstance(model, keras.Sequential) and type(model).__name__ != "Functional" \
            and type(model) is not keras.Model:
        raise InputRejected(f"the target model is a subclassed {type(model).__name__}; mwconv converts functional "
                            "and Sequential models (build the target with keras.Input)")
    plan = _plan(model, frozen_paths)
    config = keras.saving.serialize_keras_object(model)
    zero = {}
    for layer in model.layers:
        for v in layer._trainable_variables + layer._non_trainable_variables:
            if v.path in overwritten:
                zero.setdefault(layer.name, set()).add(f"{v.name}_initializer")
    originals = {}
    for entry in config["config"]["layers"]:
        name = entry["config"].get("name")
        for key in zero.get(name, ()):
            if key in entry["config"]:
                originals.setdefault(name, {})[key] = entry["config"][key]
                entry["config"][key] = dict(ZEROS)
        if name not in plan:
            continue
        cls, changes = plan[name]
        if cls is not None:
            entry.update({"module": cls.__module__, "class_name": cls.__name__,
                          "registered_name": f"mwconv>{cls.__name__}"})
        entry["config"].update(changes)
    return config, originals


def restore_initializers(model, originals):
    """Put back the initializers ``mixed_config`` replaced, so the model's config is the user's."""
    import keras

    for name, keys in originals.items():
        layer = model.get_layer(name)
        for key, value in keys.items():
            setattr(layer, key, keras.initializers.deserialize(value))


def model_from_config(config):
    import keras

    import mwconv.layers  # noqa: F401  (registers the mixed layers)
    return keras.saving.deserialize_keras_object(config, safe_mode=True)


def check_same_paths(original_paths, model):
    missing = sorted(set(original_paths) - {v.path for v in model.weights})
    if missing:
        raise InputRejected(f"rebuilding the target model renamed weight '{missing[0]}'; give its layers fixed names")


def convert_to_mixed(model, frozen_paths):
    """A new model like ``model`` with every weight in ``frozen_paths`` frozen, values copied."""
    config, _ = mixed_config(model, frozen_paths)
    result = model_from_config(config)
    original = {v.path: v for v in model.weights}
    check_same_paths(original, result)
    for v in result.weights:
        v.assign(original[v.path])
    return result
