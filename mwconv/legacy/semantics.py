"""Where a tf-keras 2.x name does not mean what the same name means in Keras 3.

Each table is checked by tests/test_tf_keras_semantics.py, which evaluates tf-keras and the
translation on the same inputs: every activation tf-keras can name, and every layer of
tf-keras's public API with its defaults.

* ``ACTIVATIONS``: activation names whose Keras 3 namesake computes other numbers, and the
  mwconv function that computes tf-keras's (any config entry named ``*activation``).
* ``RENAMED``: arguments Keras 3 takes under another name (same meaning).
* ``BUILD_SHAPES``: arguments that record the shapes a layer was built for, which Keras 3
  rebuilds from the inputs (dropped: they cannot change what the layer computes).
* ``REPLACED``: tf-keras classes Keras 3 lacks (or that live inside tf-keras's applications),
  and the mwconv layer that computes the same.
* ``INFERENCE_IDENTITY``: layers that pass their input through at inference.
* ``REFUSED``: the other tf-keras public layer classes Keras 3 lacks, and why.
"""

ACTIVATIONS = {"hard_sigmoid": "mwconv>tf_keras_hard_sigmoid"}
RENAMED = {"LeakyReLU": {"alpha": "negative_slope"}}
BUILD_SHAPES = {"MultiHeadAttention": ("query_shape", "key_shape", "value_shape")}
REPLACED = {"LayerScale": "mwconv>LayerScale", "ThresholdedReLU": "mwconv>ThresholdedReLU",
            "CustomScaleLayer": "mwconv>CustomScaleLayer", "LocallyConnected1D": "mwconv>LocallyConnected1D",
            "LocallyConnected2D": "mwconv>LocallyConnected2D"}
INFERENCE_IDENTITY = ("StochasticDepth", "RandomHeight", "RandomWidth")
REFUSED = {
    "DenseFeatures": "it reads tf.feature_column objects, which Keras 3 has no counterpart for; rebuild the "
                     "input pipeline with Keras preprocessing layers and pass --model",
    "AbstractRNNCell": "it is an abstract base class for cells written in Python; pass --model",
}


def activation(value):
    """The Keras 3 config value for a tf-keras activation entry: a serialized mwconv
    function where the name means other numbers in Keras 3, else ``value`` as it is."""
    if isinstance(value, str) and value in ACTIVATIONS:
        return {"module": "builtins", "class_name": "function", "config": ACTIVATIONS[value],
                "registered_name": "function"}
    return value


def translate_values(class_name, cfg):
    """Rewrite ``cfg`` (a layer's config, in place) so that Keras 3 computes tf-keras's
    numbers; return what was changed, as ``key: old -> new`` lines."""
    changed = []
    for key in [k for k in cfg if k.endswith("activation")]:
        new = activation(cfg[key])
        if new is not cfg[key]:
            changed.append(f"{key}: {cfg[key]} -> {ACTIVATIONS[cfg[key]]}")
            cfg[key] = new
    for old, new in RENAMED.get(class_name, {}).items():
        if old in cfg and new not in cfg:
            cfg[new] = cfg.pop(old)
            changed.append(f"{old} -> {new}")
    for key in BUILD_SHAPES.get(class_name, ()):
        cfg.pop(key, None)
    return changed
