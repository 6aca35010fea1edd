"""Frozen means frozen in training too: which layers run as Keras runs a
``trainable = False`` layer, and which of a model's frozen weights training
may still move (moving statistics).

Keras 3 has one layer whose computation reads its own ``trainable`` flag:
``BatchNormalization`` (``if training and self.trainable``: batch statistics and
an update of the moving ones, else the moving ones). A layer frozen the stock way
(``layer.trainable = False``) therefore runs in inference mode under ``fit``. A
mixed layer freezes weight by weight and keeps ``trainable = True``, so it tells
the stock code itself: a mixed ``BatchNormalization`` whose own weights are all
frozen runs in inference mode (``runs_frozen``), unless the user opted in to
updating statistics (``update_statistics=True``).

``tests/test_training.py`` scans Keras's source for every layer whose ``call``
reads ``self.trainable``, so a release that adds one fails loudly until it is
listed in ``STATISTICS_LAYERS``.

>>> runs_frozen(model.get_layer("block_1_bn"))     # doctest: +SKIP
True
"""

import keras

from mwconv import _compat

STATISTICS_LAYERS = (keras.layers.BatchNormalization,)
"""The built-in layers whose computation depends on their ``trainable`` flag."""

TRAINS, OPTED_IN, FIXED = "trains", "opted-in", "fixed"


def walk_layers(model):
    """Every layer below ``model`` (nested models and sub-layers included), depth first."""
    return _compat.flatten_layers(model, include_self=False)


def own_weights(layer):
    """The weights ``layer`` created itself (not its sub-layers')."""
    return _compat.own_variables(layer)


def statistic_names(layer):
    """Names of the moving statistics of a statistics layer: the weights the stock layer
    creates non-trainable (``moving_mean``, ``moving_variance``, renorm's)."""
    order = getattr(layer, "_mixed_order", None)
    if order:
        return [name for name, requested, extra in order if not requested and not extra]
    return [v.name for v in _compat.own_non_trainable_variables(layer)]


def runs_frozen(layer):
    """True when a mixed layer runs as Keras runs a ``trainable = False`` layer: it froze
    at least one weight, none of its own weights is trainable now, and it did not opt
    in to updating its statistics."""
    if getattr(layer, "update_statistics", False) or not getattr(layer, "frozen", None):
        return False
    return not any(v.trainable for v in own_weights(layer))


def statistics_state(layer):
    """``TRAINS`` (statistics update as in stock Keras: the layer trains), ``OPTED_IN``
    (parameters frozen, statistics update by the user's choice) or ``FIXED`` (inference
    mode under ``fit``: statistics never change)."""
    if not layer.trainable or runs_frozen(layer):
        return FIXED
    weights = own_weights(layer)
    parameters = [v for v in weights if v.name not in set(statistic_names(layer))]
    if (getattr(layer, "frozen", None) or parameters) and not any(v.trainable for v in weights):
        return OPTED_IN
    return TRAINS


def model_statistics(model):
    """``{weight path: (layer path, state)}`` for the moving statistics of every statistics
    layer in ``model``, at any depth; ``state`` as ``statistics_state``. A layer's path is
    its statistics' path less the weight name."""
    found = {}
    for layer in walk_layers(model):
        if not isinstance(layer, STATISTICS_LAYERS) or not layer.built:
            continue
        state = statistics_state(layer)
        names = set(statistic_names(layer))
        for v in own_weights(layer):
            if v.name in names:
                found[v.path] = (v.path[: -len(v.name) - 1] or layer.name, state)
    return found


def has_statistics(layer):
    """Whether ``layer`` or one of its sub-layers holds moving statistics."""
    return any(isinstance(s, STATISTICS_LAYERS) for s in _compat.flatten_layers(layer))


def settle_sublayers(layer):
    """A stock statistics layer inside a mixed layer (``TimeDistributed(BatchNormalization)``)
    whose own weights are all frozen runs as a frozen layer (``trainable = False``), unless
    the outer layer opted in; one with a trainable weight trains. Called after the outer
    layer froze or unfroze its nested weights."""
    opted_in = getattr(layer, "update_statistics", False)
    for sub in _compat.flatten_layers(layer, include_self=False):
        if not isinstance(sub, STATISTICS_LAYERS) or hasattr(sub, "frozen"):   # a mixed one settles itself
            continue
        weights = own_weights(sub)
        parameters = [v for v in weights if v.name not in set(statistic_names(sub))]
        all_frozen = bool(parameters) and not any(v.trainable for v in weights)
        wanted = not (all_frozen and not opted_in)
        if sub.trainable != wanted:
            _compat.set_layer_trainable_flag(sub, wanted)   # not the setter: it resets every weight's flag


def weights_that_stay(model):
    """The weights of ``model`` that training must leave bit-identical: every weight Keras
    does not train, less the moving statistics of layers that train or opted in."""
    moving = {path for path, (_, state) in model_statistics(model).items() if state != FIXED}
    trained = {id(v) for v in model.trainable_weights}
    return [v for v in model.weights if id(v) not in trained and v.path not in moving]
