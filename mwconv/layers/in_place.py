"""Freezing in place, for models whose config holds no layer's flags.

A registered model class built functionally whose config is its constructor's arguments
(keras-hub's ``Backbone`` and ``Task`` classes: ``BertBackbone(num_layers=2, ...)``) builds
its layers itself, so no layer config that mwconv could edit survives a reload. mwconv
freezes such a model's weights on the built model, at any depth and inside custom layers
too, as stock Keras freezes them: a layer whose weights are all frozen gets ``trainable =
False`` (a BatchNormalization then runs in inference mode under ``fit``), a layer frozen in
part becomes its mixed counterpart in place or, with none, gets its weights' flags set. The
partition is recorded in the manifest (every weight's ``trainable``), from which mwconv's
loader applies it again (``freeze_from_manifest``); ``keras.saving.load_model`` does not
read the manifest.
"""

from mwconv import _compat
from mwconv.errors import InputRejected


def _models(model):
    import keras
    return [m for m in _compat.flatten_layers(model) if isinstance(m, keras.Model)]


def _holds_layer_configs(model):
    """Whether ``model``'s own config lists its layers (Sequential, functional ``keras.Model``)."""
    import keras
    return isinstance(model, keras.Sequential) or type(model) is keras.Model or type(model).__name__ == "Functional"


def freezes_in_place(model):
    """True when ``model`` or a model inside it is a registered functional class whose config
    holds no layers (keras-hub's); a subclassed model that is not functional is refused."""
    found = False
    for m in _models(model):
        if _holds_layer_configs(m):
            continue
        if not _compat.is_functional(m):
            raise InputRejected(f"the target model is a subclassed {type(m).__name__}; mwconv converts functional "
                                "and Sequential models (build the target with keras.Input), and registered "
                                "functional classes such as keras-hub's backbones and tasks")
        found = True
    return found


def adopt(layer):
    """Make a stock layer its mixed counterpart in place (a subclass of its own class), so
    that a weight frozen now is recorded in its config. Returns the layer, or None when
    no mixed counterpart exists."""
    from mwconv.layers.mixed import mixed_class_for
    from mwconv.layers.mixin import KernelVariantsMixin, MixedWeightsMixin

    if isinstance(layer, MixedWeightsMixin):
        return layer
    cls = mixed_class_for(layer)
    if cls is None:
        return None
    order = tuple((v.name, True, False) for v in _compat.own_trainable_variables(layer))
    order += tuple((v.name, False, False) for v in _compat.own_non_trainable_variables(layer))
    layer.__class__ = cls
    layer.frozen, layer.update_statistics, layer._mixed_order = [], False, order
    if isinstance(layer, KernelVariantsMixin):
        layer._mask_value, layer.frozen_mask, layer.adapter_rank = None, False, None
        layer.adapter_alpha, layer.frozen_rows = 1.0, None
    return layer


def freeze_in_place(model, frozen_paths, opted_paths=()):
    """Freeze every weight of ``model`` whose path is in ``frozen_paths``, at any depth.
    ``opted_paths``: paths of statistics layers (``backbone/bn``) that keep updating their
    moving statistics with their parameters frozen (``--update-statistics``). Returns the model."""
    frozen = {id(v) for v in model.weights if v.path in frozen_paths}
    _freeze_below(model, frozen, {id(layer) for path, layer in _layer_paths(model) if path in set(opted_paths)})
    return model


def _layer_paths(model, prefix=""):
    """``(path, layer)`` of every layer below ``model``'s top level, nested models opened."""
    import keras
    for layer in model.layers:
        yield prefix + layer.name, layer
        if isinstance(layer, keras.Model):
            yield from _layer_paths(layer, f"{prefix}{layer.name}/")


def _freeze_below(parent, frozen, opted):
    import keras

    from mwconv.layers.mixin import set_variable_trainable
    from mwconv.layers.statistics import settle_sublayers

    for layer in _compat.flatten_layers(parent, include_self=False, recursive=False):
        weights = layer.weights
        wanted = [v for v in weights if id(v) in frozen]
        if not wanted or isinstance(layer, keras.Model):
            if wanted:
                _freeze_below(layer, frozen, opted)
            continue
        if id(layer) in opted:
            mixed = adopt(layer)
            if mixed is None:
                raise InputRejected(f"layer '{layer.name}' ({type(layer).__name__}) cannot keep updating its "
                                    "statistics with its parameters frozen: it is not a built-in Keras layer")
            mixed.frozen = sorted(v.name for v in _own(layer) if id(v) in frozen)
            mixed.update_statistics = True
            for v in wanted:
                set_variable_trainable(v, False)
            continue
        if len(wanted) == len(weights):             # frozen whole, as stock Keras freezes a layer
            layer.trainable = False
            for v in weights:
                set_variable_trainable(v, False)
            continue
        own = [v for v in _own(layer) if id(v) in frozen]
        if own and adopt(layer) is not None:
            layer.frozen = sorted(v.name for v in own)
        for v in own:
            set_variable_trainable(v, False)
        _freeze_below(layer, frozen, opted)
        if hasattr(layer, "frozen"):
            settle_sublayers(layer)


def _own(layer):
    return _compat.own_variables(layer)


def freeze_from_manifest(model, manifest):
    """Apply again the partition a manifest records for a model that freezes in place:
    each weight it lists as not trainable is frozen, each statistics layer it lists as
    ``opted-in`` keeps updating its statistics. A model whose config holds its flags, or a
    manifest without weights, is left as it is. Returns the model."""
    entries = manifest.get("weights") if isinstance(manifest, dict) else None
    try:
        if not isinstance(entries, list) or not freezes_in_place(model):
            return model
    except InputRejected:            # a subclassed model: mwconv never wrote its manifest
        return model
    entries = [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]
    frozen = {e["path"] for e in entries if e.get("trainable") is False}
    opted_weights = {e["path"] for e in entries if e.get("statistics") == "opted-in"}
    opted = [path for path, layer in _layer_paths(model) if any(v.path in opted_weights for v in _own(layer))]
    return freeze_in_place(model, frozen, opted)
