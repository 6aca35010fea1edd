"""Between training stages: change which weights of a loaded mixed model train.

The usual transfer-learning recipe trains the new head first, then unfreezes the
top of the pretrained part and trains again at a low learning rate.
``set_trainable`` is the second step for a model mwconv imported:

>>> model = mwconv.load_model("imported.keras")                       # doctest: +SKIP
>>> change = mwconv.set_trainable(model, train=["block_16_*"])
>>> change.trained[:2], change.statistics
(['block_16_expand/kernel', 'block_16_expand_BN/gamma'], {'block_16_expand_BN': 'trains', ...})
>>> model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=...)   # Keras's rule: recompile

The change is made in place, in the layers' config (``frozen`` lists), so a saved
model reloads with the new partition; every backend's variable flag follows.
"""

import dataclasses
import fnmatch
import warnings

from mwconv import _compat
from mwconv.errors import UsageError


@dataclasses.dataclass
class TrainableChange:
    """What ``set_trainable`` changed: weight paths that now train (``trained``), that are now
    frozen (``frozen``), and ``{layer path: state}`` for the statistics layers whose state
    changed (``trains``, ``opted-in`` or ``fixed``: see ``mwconv.layers.statistics``)."""

    trained: list
    frozen: list
    statistics: dict

    def __bool__(self):
        return bool(self.trained or self.frozen or self.statistics)

    def __str__(self):
        parts = [f"{len(self.trained)} weights now train", f"{len(self.frozen)} now frozen"]
        if self.statistics:
            parts.append("statistics: " + ", ".join(f"{k} {v}" for k, v in self.statistics.items()))
        return "; ".join(parts)


def _globs(value, argument):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    value = tuple(value)
    if not all(isinstance(g, str) for g in value):
        raise UsageError(f"set_trainable expected `{argument}` to be a list of globs. Received: {value!r}")
    return value


def _matches(path, globs):
    return any(fnmatch.fnmatchcase(path, g) for g in globs)


def _units(model):
    """``(layer, prefix)`` for every layer that owns weights, nested models opened."""
    import keras

    found = []

    def walk(layers, prefix):
        for layer in layers:
            if isinstance(layer, keras.Model):
                walk(layer.layers, f"{prefix}{layer.name}/")
            elif layer.weights:
                found.append((layer, f"{prefix}{layer.name}/"))

    walk(model.layers, "")
    return found


def _weights_below(layer, prefix):
    """``{name below the layer: variable}``: its own weights, then its sub-layers' by path."""
    from mwconv.layers.mixin import nested_weights
    from mwconv.layers.statistics import own_weights

    found = {v.name: v for v in own_weights(layer)}
    found.update(nested_weights(layer))
    return found


def _can_train(layer, name, variable):
    """Whether the stock layer creates this weight trainable (statistics and masks never train)."""
    order = getattr(layer, "_mixed_order", None)
    if order is not None and any(n == name for n, _, _ in order):
        return next(requested for n, requested, _ in order if n == name)
    if "/" in name:                      # a sub-layer's weight: as its own layer created it
        return any(v is variable for v in _sub_trainable(layer))
    return any(v is variable for v in _compat.own_trainable_variables(layer))


def _sub_trainable(layer):
    out = []
    for sub in _compat.flatten_layers(layer, include_self=False):
        out += _compat.own_trainable_variables(sub)
    return out


def _adopt(layer):
    from mwconv.layers.in_place import adopt
    return adopt(layer)


def _plan_layer(layer, prefix, train, freeze, opt_in):
    """``{name: wanted trainable flag}`` for this layer's matched weights, and whether it opts in."""
    from mwconv.layers.statistics import has_statistics

    wanted = {}
    for name, v in _weights_below(layer, prefix).items():
        path = prefix + name
        if _matches(path, train):
            wanted[name] = True if _can_train(layer, name, v) else None    # None: never trains; left as it is
        elif _matches(path, freeze):
            wanted[name] = False
    layer_path = prefix.rstrip("/")
    opted = bool(opt_in) and has_statistics(layer) and (
        _matches(layer_path, opt_in) or any(_matches(prefix + n, opt_in) for n in _weights_below(layer, prefix)))
    return wanted, opted


def _apply_layer(layer, prefix, wanted, opted, change, used):
    from mwconv.layers.mixin import set_variable_trainable
    from mwconv.layers.statistics import settle_sublayers

    weights = _weights_below(layer, prefix)
    if not layer.trainable and any(wanted.values()):
        _unfreeze_whole(layer, prefix, wanted, change, used)
        return
    needs_record = opted or any(flag is False and weights[name].trainable for name, flag in wanted.items())
    if needs_record and _adopt(layer) is None:
        raise UsageError(f"layer '{prefix.rstrip('/')}' ({type(layer).__name__}) is not a built-in Keras layer, so "
                         "mwconv cannot record a frozen weight in its config; freeze it whole with "
                         "layer.trainable = False, or leave it out of `freeze`")
    frozen = list(getattr(layer, "frozen", []))
    for name, flag in wanted.items():
        v = weights[name]
        used.add(prefix + name)
        if flag is None:
            frozen = [n for n in frozen if n != name]
            continue
        if v.trainable != flag:
            set_variable_trainable(v, flag)
            (change.trained if flag else change.frozen).append(prefix + name)
        if flag and name in frozen:
            frozen.remove(name)
        elif not flag and name not in frozen and hasattr(layer, "frozen"):
            frozen.append(name)
    if hasattr(layer, "frozen"):
        layer.frozen = sorted(frozen)
        if opted:
            layer.update_statistics = True
        settle_sublayers(layer)


def _unfreeze_whole(layer, prefix, wanted, change, used):
    """A layer frozen whole (``trainable = False``: a custom layer mwconv has no mixed
    counterpart for) trains whole again, or not at all."""
    names = [n for n, v in _weights_below(layer, prefix).items() if _can_train(layer, n, v)]
    matched = sorted(n for n, flag in wanted.items() if flag)
    if matched != sorted(names):
        raise UsageError(f"layer '{prefix.rstrip('/')}' ({type(layer).__name__}) is frozen whole (trainable = "
                         f"False), so it trains whole or not at all; `train` matches {matched} of {sorted(names)}")
    layer.trainable = True
    change.trained += [prefix + n for n in names]
    used.update(prefix + n for n in wanted)


def set_trainable(model, train=(), freeze=(), update_statistics=()):
    """Change which weights of ``model`` train, in place, for the next training stage.

    ``freeze`` and ``train`` are globs over weight paths, the same as ``mwconv import
    --freeze/--train`` (``block_16_*``, ``predictions/*``); a path matching both trains.
    Weights that never train in Keras (moving statistics, masks) keep their flag when
    matched by ``train``; their layer then updates its statistics as a training layer
    does. ``update_statistics``: globs over layer paths (or their weight paths) of
    BatchNormalization layers whose parameters stay frozen but whose statistics update.

    The new partition is recorded in the layers' config (``frozen``), so ``model.save``
    keeps it; a stock layer in which a weight is frozen becomes its mixed counterpart.
    Returns a ``TrainableChange``. A compiled model must be compiled again for the change
    to take effect (Keras's rule); a warning says so. A glob that matches nothing is an
    error (``UsageError``), so a typo never passes as "nothing to change".

    >>> change = set_trainable(model, freeze=["*"], train=["head/*"])    # doctest: +SKIP
    >>> change.trained, len(change.frozen)
    (['head/kernel', 'head/bias'], 2)
    """
    from mwconv.layers.statistics import model_statistics

    train, freeze = _globs(train, "train"), _globs(freeze, "freeze")
    opt_in = _globs(update_statistics, "update_statistics")
    if not (train or freeze or opt_in):
        raise UsageError("set_trainable needs `train`, `freeze` or `update_statistics` globs")
    before = {p: s for p, (_, s) in model_statistics(model).items()}
    change, used, opted_any = TrainableChange([], [], {}), set(), set()
    for layer, prefix in _units(model):
        wanted, opted = _plan_layer(layer, prefix, train, freeze, opt_in)
        if wanted or opted:
            _apply_layer(layer, prefix, wanted, opted, change, used)
        if opted:
            opted_any.add(prefix)
    for glob in train + freeze:
        if not any(fnmatch.fnmatchcase(p, glob) for p in used):
            raise UsageError(f"set_trainable: glob {glob!r} matches no weight of model '{model.name}' "
                             "(weight paths look like 'layer/kernel' or 'backbone/layer/kernel')")
    if opt_in and not opted_any:
        raise UsageError(f"set_trainable: update_statistics {list(opt_in)} matches no layer with moving statistics "
                         f"(BatchNormalization) in model '{model.name}'")
    for path, (layer_path, state) in model_statistics(model).items():
        if before.get(path) != state:
            change.statistics[layer_path] = state
    if change and getattr(model, "compiled", False):
        warnings.warn(f"set_trainable changed model '{model.name}' after it was compiled: call model.compile(...) "
                      "again for the change to take effect in fit (Keras's rule)", UserWarning, stacklevel=2)
    return change
