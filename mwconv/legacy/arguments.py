"""Which constructor arguments a Keras 3 layer accepts, and whether one it
refuses can be dropped: read from the layer classes' signatures (Keras 3's and
tf-keras 2.x's), never from a hand-kept list.

An argument Keras 3 does not take is dropped when it cannot change what a
loaded model computes: initializers, regularizers and constraints (the weights
come from the file), or a value equal to tf-keras's own default for that
class (``groups=1``, ``time_major=False``). Any other value is refused, naming
the layer, the argument and its value.
"""

import functools
import inspect

from mwconv.errors import InputRejected

# Layer.__init__ pops these from **kwargs (Keras 3); build-time shape hints
_LAYER_KWARGS = {"input_dim", "input_shape", "batch_input_shape", "batch_size"}
_TRAINING_ONLY = ("_initializer", "_regularizer", "_constraint")
# tf-keras reads these from **kwargs (no signature default to compare with); each picks an
# implementation of the same math, so no value changes what a loaded model computes
_IMPLEMENTATION_ONLY = {"implementation"}
_MISSING = object()


def _params(cls):
    """Named parameters of ``cls.__init__`` and of every base its **kwargs reach."""
    names, defaults = set(), {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            break
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
                if p.default is not p.empty:
                    defaults.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return names, defaults


@functools.lru_cache(maxsize=None)
def accepted(cls):
    """The argument names a Keras 3 layer class takes."""
    names, _ = _params(cls)
    return frozenset(names | _LAYER_KWARGS)


@functools.lru_cache(maxsize=None)
def tf_keras_defaults(class_name):
    """tf-keras 2.x's defaults for ``class_name``'s arguments ({} if it has no such class)."""
    try:
        from mwconv._quiet import import_quietly
        tf_keras = import_quietly("tf_keras")
    except ImportError:
        return {}
    cls = getattr(tf_keras.layers, class_name, None)
    if not isinstance(cls, type):
        return {}
    return _params(cls)[1]


def _same(value, default):
    if isinstance(default, tuple):
        default = list(default)
    return value == default


def filter_arguments(cls, class_name, config, layer_name, path):
    """Drop what Keras 3's ``cls`` refuses; return the dropped names. Refuse values that matter."""
    allowed = accepted(cls)
    dropped = []
    for key in [k for k in config if k not in allowed]:
        value = config[key]
        harmless = key.endswith(_TRAINING_ONLY) or key in _IMPLEMENTATION_ONLY or value is None
        if not harmless:
            default = tf_keras_defaults(class_name).get(key, _MISSING)
            harmless = default is not _MISSING and _same(value, default)
        if not harmless:
            raise InputRejected(f"layer '{layer_name}' ({class_name}) has {key}={value!r}, which Keras 3's "
                                f"{cls.__name__} has no argument for; mwconv cannot translate it", path=path)
        dropped.append(key)
        del config[key]
    return dropped
