"""The target model from ``--model``, and its weights catalogued."""

import importlib
import importlib.util
import os
import re
import sys

from mwconv import _compat
from mwconv.convert.matching import Target
from mwconv.errors import InputRejected
from mwconv.modelio import keras_api


def _check_model(obj, spec):
    keras = keras_api()
    if not isinstance(obj, keras.Model):
        raise InputRejected(f"--model '{spec}' did not return a Keras model (got {type(obj).__name__}); "
                            "return a keras.Model from the function")
    if not obj.built or not obj.weights:
        raise InputRejected(f"--model '{spec}' returned a model with no weights yet; build it in the factory "
                            "(e.g. call it once or use keras.Input)")
    return obj


def load_model_spec(spec):
    """``model.keras``, a keras-hub preset folder or ``config.json``, ``package.module:function``
    or ``path/to/file.py:function``."""
    if (os.path.isdir(spec) and not spec.rstrip(os.sep).endswith(".keras")) or spec.endswith(".json"):
        from mwconv.formats.keras_hub_preset import target_model
        return _check_model(target_model(spec), spec)
    if spec.endswith(".keras") or os.path.isfile(spec):
        from mwconv.formats.keras_file import load_keras_model
        return _check_model(load_keras_model(spec), spec)
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise InputRejected(f"--model '{spec}' is neither a .keras file, a keras-hub preset or config.json, nor "
                            "'module:function' / 'file.py:function'")
    keras_api()
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            if not os.path.isfile(module_name):
                words = "is a folder, not a file" if os.path.isdir(module_name) else "no such file or directory"
                raise InputRejected(words, path=module_name)
            unique = "mwconv_user_model_" + re.sub(r"\W", "_", os.path.abspath(module_name))
            spec_obj = importlib.util.spec_from_file_location(unique, module_name)
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[unique] = module
            spec_obj.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InputRejected:
        raise
    except Exception as e:  # the user's code may raise anything while importing
        raise InputRejected(f"--model '{spec}' cannot be imported ({type(e).__name__}: {e})") from e
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InputRejected(f"--model '{spec}': '{func_name}' is not a function of {module_name}")
    try:
        model = func()
    except Exception as e:  # the user's factory may raise anything
        raise InputRejected(f"--model '{spec}' raised {type(e).__name__}: {e}") from e
    return _check_model(model, spec)


def _snake(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def saved_order(layer):
    """The layer's variables in the order its save_own_variables writes them."""
    if hasattr(layer, "saved_variables"):
        return layer.saved_variables()
    return _compat.own_variables(layer)


def _owners(layer):
    """``{id(variable): the layer inside ``layer`` that created it}``, at any depth."""
    found = {}
    for inner in _compat.flatten_layers(layer, include_self=False):
        for v in _compat.own_variables(inner):
            found.setdefault(id(v), inner)
    return found


def _file_keys(model):
    """``{id(variable): its Keras 3 .weights.h5 key}``; {} where this Keras's saving walk
    cannot be run (``tests/test_compat.py`` names the internal that moved)."""
    try:
        return _compat.weights_file_keys(model)
    except (ImportError, AttributeError, TypeError, ValueError):
        return {}


def _rooted_keys(model):
    """``{id(variable): ["Class:key", ...]}``: each weight's key in the weights file of the
    model and of every model inside it, qualified by that model's class
    (``BertBackbone:layers/dense/vars/0``). A keras-hub preset's keys are qualified so, which
    keeps a backbone preset's ``layers/dense`` from naming a task's own head."""
    import keras
    found = {}
    for m in _compat.flatten_layers(model):
        if isinstance(m, keras.Model):
            for vid, key in _file_keys(m).items():
                found.setdefault(vid, []).append(f"{type(m).__name__}:{key}")
    return found


def catalogue(model):
    """Every weight of the model as a Target, with the key Keras 3 weights files use for it."""
    trainable_ids = {id(v) for v in model.trainable_weights}
    keys, rooted = _file_keys(model), _rooted_keys(model)
    targets, used = [], {}
    for layer in model.layers:
        name = _snake(type(layer).__name__)
        count = used.get(name, 0)
        used[name] = count + 1
        h5_name = name if count == 0 else f"{name}_{count}"
        owned = saved_order(layer)
        for i, v in enumerate(owned):
            targets.append(Target(path=v.path, layer=layer, layer_class=type(layer).__name__, weight=v.name,
                                  shape=tuple(v.shape), dtype=v.dtype, trainable=id(v) in trainable_ids,
                                  aliases=(keys.get(id(v), f"layers/{h5_name}/vars/{i}"), *rooted.get(id(v), ())),
                                  owner=layer))
        nested = [v for v in layer.weights if all(v is not o for o in owned)]
        owners = _owners(layer) if nested else {}
        for v in nested:  # weights of sub-layers and nested models: by path, name and weights-file key
            inner = v.path if v.path.startswith(layer.name + "/") else f"{layer.name}/{v.path}"
            owner = owners.get(id(v))          # its own layer's class decides its layout transform
            aliases = (inner, *([keys[id(v)]] if id(v) in keys else []), *rooted.get(id(v), ()))
            targets.append(Target(path=v.path, layer=layer, layer_class=type(owner).__name__ if owner else "",
                                  weight=v.name, shape=tuple(v.shape), dtype=v.dtype,
                                  trainable=id(v) in trainable_ids, aliases=aliases, owner=owner))
    return targets
