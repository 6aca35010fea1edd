"""Turn the stock layers that hold frozen weights into their mixed
counterparts, so the frozen/trainable split is part of the model's config and
survives save and reload."""

from mwconv.errors import InputRejected


def _stock_trainable_names(layer):
    order = getattr(layer, "_mixed_order", None)
    if order:
        return [n for n, requested, extra in order if requested and not extra]
    return [v.name for v in layer._trainable_variables]


def convert_to_mixed(model, frozen_paths):
    """Clone ``model`` with every weight in ``frozen_paths`` frozen; return the clone.

    Layers with a mixed counterpart get ``frozen=[names]``; a layer without one
    is frozen whole (``trainable=False``) when all its weights are to be frozen.
    """
    import keras

    from mwconv.layers import MIXED_FOR_STOCK

    plan = {}
    for layer in model.layers:
        stock_names = _stock_trainable_names(layer)
        paths = {v.name: v.path for v in layer._trainable_variables + layer._non_trainable_variables}
        want = sorted(n for n in stock_names if paths.get(n) in frozen_paths)
        mixed_cls = MIXED_FOR_STOCK.get(type(layer).__name__)
        is_mixed = mixed_cls is not None and isinstance(layer, mixed_cls)
        if not want and not is_mixed:
            continue
        if mixed_cls is not None:
            plan[id(layer)] = (mixed_cls, {"frozen": want})
        elif set(want) == set(stock_names):
            plan[id(layer)] = (type(layer), {"trainable": False})
        else:
            raise InputRejected(
                f"layer '{layer.name}' ({type(layer).__name__}) has no mixed counterpart, so its weights are "
                f"frozen all together or not at all; asked to freeze {want} of {stock_names}. "
                "Adjust --train/--freeze")
        nested = [v for v in layer.weights if v.path in frozen_paths and v.name not in paths]
        if nested:
            raise InputRejected(f"layer '{layer.name}' is a nested model or holds sub-layers; freezing weights "
                                f"inside it ({nested[0].path}) is not supported yet")

    def clone(layer):
        config = layer.get_config()
        if id(layer) in plan:
            cls, changes = plan[id(layer)]
            config.update(changes)
            return cls.from_config(config)
        return type(layer).from_config(config)

    if not isinstance(model, (keras.Sequential,)) and type(model) is not keras.Model and \
            type(model).__name__ != "Functional":
        raise InputRejected(f"the target model is a subclassed {type(model).__name__}; mwconv converts functional "
                            "and Sequential models (build the target with keras.Input)")
    cloned = keras.models.clone_model(model, clone_function=clone)
    original = {v.path: v for v in model.weights}
    for v in cloned.weights:
        if v.path not in original:
            raise InputRejected(f"cloning the target model renamed weight '{v.path}'; give its layers fixed names")
        v.assign(original[v.path])
    return cloned
