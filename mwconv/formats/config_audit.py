"""Audit of a model architecture read from a file, on its parsed config and before anything
is built from it: no code from the file is ever run, and no declared weight is allocated that
the file's own tensors do not back.

* :func:`code_in_config` walks the config at every nesting level (nested models, wrappers,
  RNN cells, activations) and names the first object that would run code or import a module:
  ``Lambda`` layers (Python bytecode or a named function), Keras 3's serialized ``__lambda__``,
  ``TFSMLayer`` (it loads another SavedModel named by a path), a ``function`` object from a
  module outside the model libraries (``builtins`` only for a function registered in this
  process: Keras writes mwconv's ``tf_keras_hard_sigmoid`` so), and any ``module`` that Keras would import. JSON
  escapes are decoded before the walk, so ``"Lamb\\u0064a"`` is ``Lambda``.
* :func:`declared_weights` gives, per layer, a lower bound of the weight elements its config
  declares (``Dense(units=n)`` holds at least ``n`` kernel elements whatever its input,
  ``Embedding`` exactly ``input_dim * output_dim``). :func:`check_declared_sizes` refuses a
  config whose declared weights the file's weight bytes cannot hold.

>>> code_in_config({"class_name": "Sequential", "config": {"layers": [
...     {"class_name": "Lamb\\u0064a", "config": {"name": "f"}}]}})
"layer 'f' is a Lambda layer, which holds Python code"
>>> declared_weights({"class_name": "Embedding", "config": {"name": "e", "input_dim": 2**31, "output_dim": 4}})
[('e', 8589934592)]
"""

import importlib
import math
import sys

from mwconv.errors import InputRejected, printable

# the libraries whose objects a model file may name. Keras before 3.9 imports any module a
# config names, and an arbitrary one (``os``, a package with import-time effects) is code
# chosen by the file; objects registered in this process are found without an import
MODULE_ROOTS = ("keras", "tf_keras", "mwconv", "keras_hub", "keras_nlp", "keras_cv")
CODE_CLASSES = {
    "Lambda": "is a Lambda layer, which holds Python code",
    "__lambda__": "holds a serialized Python lambda",
    "TFSMLayer": "is a TFSMLayer, which loads another SavedModel from a path the file names",
}
# a declared size is refused past this multiple of the file's weight bytes (1 byte per
# element: int8 and packed int4 weights are honest) and this floor
SIZE_SLACK = 2
SIZE_FLOOR = 16 << 20


def _allowed_module(module, config):
    """A model library's module (for a class, TensorFlow's too: tf-keras records
    ``tensorflow.python.ops.init_ops_v2`` for its initializers), or an object that this
    process registered with Keras (found in the registry, never imported). A function from
    TensorFlow is refused: ``tf.io.write_file`` as an activation would write files."""
    root = module.split(".")[0]
    if root in MODULE_ROOTS or (root == "tensorflow" and config.get("class_name") != "function"):
        return True
    import keras

    import mwconv.layers  # noqa: F401  (what mwconv registers is found, never imported)
    name = config.get("registered_name") or config.get("class_name")
    if config.get("class_name") == "function":     # Keras names a registered function in "config"
        name = config.get("config")
    if not isinstance(name, str):
        return False
    package = name.split(">")[0] if ">" in name else None
    if package in MODULE_ROOTS and package not in sys.modules:
        try:                 # a model library registers its objects when imported (keras_hub>gelu_approximate)
            importlib.import_module(package)
        except ImportError:
            return False
    return keras.saving.get_registered_object(name) is not None


def _label(obj, layer):
    return f"layer '{printable(layer)}'" if layer else "the model"


def code_in_config(config, layer=None):
    """The reason the first code-bearing object in ``config`` is refused, or None."""
    if isinstance(config, list):
        for item in config:
            reason = code_in_config(item, layer)
            if reason:
                return reason
        return None
    if not isinstance(config, dict):
        return None
    inner = config.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        layer = inner["name"]
    class_name = config.get("class_name")
    if class_name in CODE_CLASSES:
        return f"{_label(config, layer)} {CODE_CLASSES[class_name]}"
    if config.get("function_type") is not None or isinstance(config.get("function"), (list, dict)):
        return f"{_label(config, layer)} holds a Python function"
    module = config.get("module")
    if isinstance(module, str) and module and not _allowed_module(module, config):
        return f"{_label(config, layer)} names the module '{printable(module)}', which would be imported"
    if class_name == "function" and not isinstance(inner, str):
        return f"{_label(config, layer)} holds a function that is not named"
    for key, value in config.items():
        if key != "module":
            reason = code_in_config(value, layer)
            if reason:
                return reason
    return None


def refuse_code(config, path):
    """InputRejected (exit 3) when ``config`` would run code; nothing is built."""
    reason = code_in_config(config)
    if reason:
        raise InputRejected(f"{reason}; mwconv never runs code from a file (rebuild the model in Python "
                            "and pass --model)", path=path)


# -- declared sizes -----------------------------------------------------------------
def _int(value, default=1):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return max(int(value), 0) if math.isfinite(value) else default


def _prod(values, default=1):
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return _int(values)
    if not isinstance(values, (list, tuple)):
        return default
    out = 1
    for v in values:
        out *= _int(v)
    return out


def _bias(cfg, n):
    return n if cfg.get("use_bias", True) else 0


def _conv(cfg):
    filters, k = _int(cfg.get("filters"), 0), _prod(cfg.get("kernel_size"))
    return filters * k + _bias(cfg, filters)


def _rnn(gates):
    def size(cfg):
        units = _int(cfg.get("units"), 0)
        return gates * units * units + gates * units + _bias(cfg, gates * units)
    return size


def _conv_rnn(cfg):
    filters, k = _int(cfg.get("filters"), 0), _prod(cfg.get("kernel_size"))
    return 4 * filters * filters * k + 4 * filters * k + _bias(cfg, 4 * filters)


def _attention(cfg):
    heads, key = _int(cfg.get("num_heads"), 0), _int(cfg.get("key_dim"), 0)
    value = _int(cfg.get("value_dim"), key) if cfg.get("value_dim") is not None else key
    return heads * (2 * key + value) + heads * value


SIZES = {
    "Dense": lambda c: _int(c.get("units"), 0) + _bias(c, _int(c.get("units"), 0)),
    "EinsumDense": lambda c: _prod(c.get("output_shape")),
    "Embedding": lambda c: _int(c.get("input_dim"), 0) * _int(c.get("output_dim"), 0),
    **{n: _conv for n in ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
                          "Conv3DTranspose", "Convolution1D", "Convolution2D", "Convolution3D")},
    **{n: (lambda c: _prod(c.get("kernel_size")) * _int(c.get("depth_multiplier"), 1))
       for n in ("DepthwiseConv1D", "DepthwiseConv2D")},
    **{n: (lambda c: _prod(c.get("kernel_size")) * _int(c.get("depth_multiplier"), 1) + _int(c.get("filters"), 0))
       for n in ("SeparableConv1D", "SeparableConv2D")},
    "LSTM": _rnn(4), "LSTMCell": _rnn(4), "GRU": _rnn(3), "GRUCell": _rnn(3),
    "SimpleRNN": _rnn(1), "SimpleRNNCell": _rnn(1),
    **{n: _conv_rnn for n in ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")},
    "MultiHeadAttention": _attention,
}


def _class(name):
    name = name if isinstance(name, str) else ""
    return name[len("Mixed"):] if name.startswith("Mixed") and name[len("Mixed"):] in SIZES else name


def declared_weights(config, out=None):
    """``[(layer name, lower bound of its weight elements)]`` for every layer at every level
    whose class declares a size (a Bidirectional counts its layer twice)."""
    out = [] if out is None else out
    if isinstance(config, list):
        for item in config:
            declared_weights(item, out)
        return out
    if not isinstance(config, dict):
        return out
    cfg = config.get("config")
    cls = _class(config.get("class_name"))
    if cls in SIZES and isinstance(cfg, dict):
        out.append((str(cfg.get("name", cls)), SIZES[cls](cfg)))
    if cls == "Bidirectional" and isinstance(cfg, dict) and cfg.get("backward_layer") is None:
        declared_weights(cfg.get("layer"), out)
    for key, value in config.items():
        if key != "class_name":
            declared_weights(value, out)
    return out


def check_declared_sizes(config, weight_bytes, path, where="the file"):
    """InputRejected (exit 3, naming the layer) when the weights that ``config`` declares need
    more than ``SIZE_SLACK`` times the ``weight_bytes`` that back them: building such a model
    would allocate memory for weights the file does not hold."""
    sizes = declared_weights(config)
    if not sizes:
        return
    limit = SIZE_SLACK * max(int(weight_bytes), 0) + SIZE_FLOOR
    total = sum(n for _, n in sizes)
    if total <= limit:
        return
    name, largest = max(sizes, key=lambda s: s[1])
    raise InputRejected(f"layer '{printable(name)}' declares at least {largest:,} weight elements "
                        f"({total:,} in all layers), but {where} holds {weight_bytes:,} bytes of weights: "
                        "refused before allocating them (a corrupt or hostile config)", path=path)
