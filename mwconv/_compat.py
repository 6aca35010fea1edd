"""The framework internals mwconv reaches into, behind one door.

Each function says what it touches, why no public hook serves, and the versions it was
checked against (Keras 3.8 to 3.15, TensorFlow 2.17 to 2.21, tf-keras 2.17 to 2.21, NumPy 1.26
to 2.3). ``tests/test_compat.py`` calls every one on a real model and fails with a message
naming the internal when a release moves it. Nothing patched here stays patched after the
call that needed it, and no caller's model is left changed.

>>> import keras
>>> layer = keras.layers.Dense(2)
>>> layer.build((None, 3))
>>> [v.name for v in own_variables(layer)]
['kernel', 'bias']
"""

import contextlib

INTERNALS = {
    "keras.Layer._flatten_layers": "every sublayer, nested models and wrappers included",
    "keras.Layer._trainable_variables / _non_trainable_variables": "a layer's own variables, by the "
    "flag it was created with",
    "keras.Layer._trainable": "a layer's flag without resetting its weights' flags",
    "keras.Variable._value / tf.Variable._trainable": "the TensorFlow variable's trainable flag",
    "keras.Variable._path": "a variable's path",
    "keras.Variable._initialize_with_initializer": "the initial value of variables created in a scope",
    "keras.Layer._post_build": "the hook after build (overridden by the mixed layers)",
    "keras.src.models.functional.Functional": "whether a model class is built functionally",
    "keras.src.saving.saving_lib._save_state / H5IOStore": "the key each weight gets in a Keras 3 "
    ".weights.h5, at any depth",
    "keras.Model._inputs_struct": "the structure (dict, list, single) a functional model was built with",
    "KerasTensor._keras_history": "the layer that produced a model output",
    "keras.Layer._inbound_nodes": "the tensors of each call of a layer (mwconv compare's pairing)",
    "keras.Variable._initialize_with_initializer (allocation_limit)": "bounding what building a "
    "config allocates",
    "keras.ops.add on TensorFlow (add)": "broadcasting as NumPy does, not as tf.nn.bias_add",
    "keras.src.saving.serialization_lib.ObjectSharingScope": "shared objects of a config",
    "keras.src.backend.tensorflow.nn.conv / _convert_data_format": "the TensorFlow backend's convolution",
    "tf.__internal__.tracking.AutoTrackable": "a root object to save variables and functions from",
    "tf.Variable._handle_name": "the name a variable is saved under in a SavedModel",
    "tf_keras.src.saving.serialization_lib.SafeModeScope": "tf-keras's safe mode for a config",
    "numpy.lib._format_impl._read_array_header": "the header of a .npy file of format 3.0",
}


# -- layers and their variables -------------------------------------------------------------
def flatten_layers(layer, include_self=True, recursive=True):
    """Every layer inside ``layer`` (``Layer._flatten_layers``). ``model.layers`` lists one
    level only and no public API walks into wrappers (``TimeDistributed``, ``Bidirectional``)
    or layers kept as attributes, as keras-hub's blocks keep theirs."""
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


def own_trainable_variables(layer):
    """The variables ``layer`` itself created trainable (``Layer._trainable_variables``): the
    public ``trainable_weights`` includes sublayers' and is empty for a frozen layer."""
    return list(layer._trainable_variables)


def own_non_trainable_variables(layer):
    """Likewise for those created non-trainable (``Layer._non_trainable_variables``)."""
    return list(layer._non_trainable_variables)


def own_variables(layer):
    """The variables ``layer`` itself created, in creation order by kind."""
    return own_trainable_variables(layer) + own_non_trainable_variables(layer)


def set_layer_trainable_flag(layer, value):
    """``layer._trainable``: the layer's own flag. The public setter also sets every weight's
    flag, which would undo a mixed layer's per-weight partition."""
    layer._trainable = bool(value)


def set_backend_trainable_flag(variable, value):
    """The trainable flag of the TensorFlow variable inside a Keras one (``Variable._value``,
    then ``tf.Variable._trainable``, which has no setter). It is what a SavedModel records and
    what ``tf.GradientTape`` watches; Keras's own setter leaves it. Other backends have no
    such flag (torch's ``requires_grad`` follows Keras's setter): nothing to do."""
    backend_variable = getattr(variable, "_value", None)
    if backend_variable is not None and hasattr(backend_variable, "_trainable"):
        backend_variable._trainable = bool(value)


def set_variable_path(variable, path):
    """``Variable._path``, read-only in public: mwconv names weights by their layer's name so
    that paths do not depend on build order (``layers.conversion.stable_paths``)."""
    variable._path = path


def has_post_build_hook():
    """Keras calls ``Layer._post_build`` after ``build`` (3.8 to 3.15); the mixed layers
    override it to apply their frozen partition to the weights just created."""
    import keras
    return callable(getattr(keras.Layer, "_post_build", None))


# -- models -------------------------------------------------------------------------------
def is_functional(model):
    """Whether ``model`` is built functionally (``keras.src.models.functional.Functional``):
    a subclass that calls ``super().__init__(inputs, outputs)``, as keras-hub's backbones
    do, is one; a model defined by its ``call`` is not. No public test tells them apart."""
    from keras.src.models.functional import Functional
    return isinstance(model, Functional)


def weights_file_keys(model):
    """``{id(variable): the dataset key Keras 3's save_weights gives it}``
    (``layers/transformer_encoder/_self_attention_layer/query_dense/vars/0``), at any depth.
    Keras names a weight by the attribute path its saving walk takes (class names, counters,
    private attribute names), which only that walk knows: mwconv runs it
    (``saving_lib._save_state``) with a store that records each variable instead of writing."""
    from keras.src.saving import saving_lib

    found = {}

    class Entry(dict):
        def __init__(self, path):
            super().__init__()
            self.path = path

        def __setitem__(self, key, variable):
            found.setdefault(id(variable), f"{self.path}/vars/{key}" if self.path else f"vars/{key}")

    class Recorder(saving_lib.H5IOStore):
        def __init__(self):                 # no file: nothing is opened or written
            pass

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            return Entry(path)

    saving_lib._save_state(model, Recorder(), None, "", set())
    return found


def inputs_struct(model):
    """``Functional._inputs_struct``: whether the model takes a dict, a list or one tensor;
    ``model.inputs`` is always a flat list. None for a model without it."""
    return getattr(model, "_inputs_struct", None)


def producing_layer(tensor):
    """The layer that produced a symbolic tensor (``KerasTensor._keras_history``), or None."""
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def tensor_history(tensor):
    """``(layer, node index, tensor index)`` that produced a symbolic tensor
    (``KerasTensor._keras_history``), or None."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else (history.operation, history.node_index, history.tensor_index)


def node_tensors(layer, node_index):
    """``(input tensors, output tensors)`` of one call of ``layer`` in a functional graph
    (``Layer._inbound_nodes``: ``layer.output`` exists only for a layer called once), flat."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if node_index >= len(nodes):
        return [], []
    node = nodes[node_index]
    return list(node.input_tensors), list(node.output_tensors)


def tf_keras_node_tensors(layer, node_index):
    """The same for a tf-keras layer (``Layer.get_input_at`` / ``get_output_at``, flattened)."""
    import tensorflow as tf
    try:
        ins, outs = layer.get_input_at(node_index), layer.get_output_at(node_index)
    except (ValueError, RuntimeError, AttributeError):
        return [], []
    return tf.nest.flatten(ins), tf.nest.flatten(outs)


def tf_keras_history(tensor):
    """``(layer, node index, tensor index)`` of a tf-keras symbolic tensor, or None."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else (history.layer, history.node_index, history.tensor_index)


# -- scopes that patch for the length of one call -------------------------------------------------
@contextlib.contextmanager
def variables_start_as_zeros(keras, keep=("seed_generator_state",)):
    """Variables created inside start as zeros, whatever their initializer (Keras has no
    config-level switch for this): ``keras.Variable._initialize_with_initializer`` is replaced
    for the length of the block and restored after it, even on error. For a model whose every
    variable is then assigned from its file, drawing random values first costs time and page
    faults for nothing; the layers keep their initializers, so their configs are unchanged.
    Variables named in ``keep`` (a SeedGenerator's state, not in the weights file) keep the
    value their initializer gives. The patch is process-wide while it lasts: models built on
    other threads meanwhile start from zeros too."""
    cls = keras.Variable
    original = getattr(cls, "_initialize_with_initializer", None)
    if original is None:        # a Keras without this hook: initializers run as usual
        yield
        return
    own = "_initialize_with_initializer" in cls.__dict__
    zeros = keras.initializers.Zeros()

    def initialize(self, initializer):
        return original(self, initializer if self.name in keep else zeros)

    cls._initialize_with_initializer = initialize
    try:
        yield
    finally:
        if own:
            cls._initialize_with_initializer = original
        else:
            del cls._initialize_with_initializer


class AllocationExceeded(BaseException):
    """Raised inside a model's build by ``allocation_limit``: a BaseException, so that
    Keras's deserializer (which wraps an Exception in a TypeError) lets it through."""

    def __init__(self, allocated, limit):
        super().__init__(allocated, limit)
        self.allocated, self.limit = allocated, limit


@contextlib.contextmanager
def allocation_limit(keras, limit):
    """Variables created inside may hold ``limit`` bytes in all; the one that would pass it
    raises AllocationExceeded before its memory is allocated. For a config that names a
    model class and its constructor's arguments (keras-hub's ``BertBackbone(vocabulary_size=
    ...)``) nothing but building tells the weights' sizes: this bounds what a hostile config
    can allocate. ``keras.Variable._initialize_with_initializer`` is wrapped for the block."""
    import numpy as np

    cls = keras.Variable
    original = getattr(cls, "_initialize_with_initializer", None)
    if original is None:
        yield
        return
    own = "_initialize_with_initializer" in cls.__dict__
    total = [0]

    def initialize(self, initializer):
        try:
            size = np.dtype(self.dtype).itemsize
        except TypeError:               # bfloat16 without ml_dtypes, int4: count them as 2 and 1 bytes
            size = 2 if "16" in str(self.dtype) else 1
        for d in self.shape:
            size *= int(d)
        total[0] += size
        if total[0] > limit:
            raise AllocationExceeded(total[0], limit)
        return original(self, initializer)

    cls._initialize_with_initializer = initialize
    try:
        yield
    finally:
        if own:
            cls._initialize_with_initializer = original
        else:
            del cls._initialize_with_initializer


def add(x1, x2):
    """``keras.ops.add`` with NumPy's broadcasting on every backend. Keras's TensorFlow backend
    (checked on 3.12 to 3.15) sends an ``x2`` that squeezes to a vector matching ``x1``'s
    second or last axis to ``tf.nn.bias_add``, which adds along the last axis: an ``(n, 1)``
    column beside a square ``(..., n, n)`` tensor lands on the wrong axis, silently. There
    ``tf.add`` is called, after Keras's own dtype promotion."""
    import keras
    if keras.backend.backend() != "tensorflow":
        return keras.ops.add(x1, x2)
    import tensorflow as tf
    x1 = x1 if isinstance(x1, (int, float)) else keras.ops.convert_to_tensor(x1)
    x2 = x2 if isinstance(x2, (int, float)) else keras.ops.convert_to_tensor(x2)
    dtype = keras.backend.result_type(getattr(x1, "dtype", type(x1)), getattr(x2, "dtype", type(x2)))
    return tf.add(keras.ops.convert_to_tensor(x1, dtype), keras.ops.convert_to_tensor(x2, dtype))


def object_sharing_scope():
    """Keras's ``ObjectSharingScope`` (``keras.src.saving.serialization_lib``), which
    ``load_model`` enters around deserialization so that a config's shared objects are built
    once; ``deserialize_keras_object`` alone does not. A no-op scope where it is missing."""
    try:
        from keras.src.saving.serialization_lib import ObjectSharingScope
    except ImportError:
        return contextlib.nullcontext()
    return ObjectSharingScope()


@contextlib.contextmanager
def plain_grouped_convolutions(tf):
    """Keras's TensorFlow backend runs a grouped convolution (groups > 1) as an XLA-compiled
    function, which tf2onnx cannot read. For the length of the block,
    ``keras.src.backend.tensorflow.nn.conv`` is the plain ``tf.nn.convolution`` (which tf2onnx
    writes as an ONNX Conv with ``group``), restored after it. No public hook replaces a
    backend op; a Keras without this module runs as it is."""
    try:
        from keras.src.backend.tensorflow import nn as tf_nn
        convert = tf_nn._convert_data_format
    except (ImportError, AttributeError):
        yield
        return
    original = tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        data_format = tf_nn.backend.standardize_data_format(data_format)
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(),
                                 data_format=convert(data_format, len(inputs.shape)), dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original


@contextlib.contextmanager
def saved_names(pairs):
    """``[(tf.Variable, name)]`` applied as the variables' ``_handle_name`` (the name
    ``tf.saved_model.save`` stores them under, which has no public setter) for the length of
    the block, and the previous names restored after it: the caller's model is unchanged."""
    pairs = list(pairs)
    previous = [(v, v.__dict__.get("_handle_name")) for v, _ in pairs]
    try:
        for v, name in pairs:
            v._handle_name = name
        yield
    finally:
        for v, name in previous:
            if name is None:
                v.__dict__.pop("_handle_name", None)
            else:
                v._handle_name = name


def auto_trackable(tf):
    """A bare trackable root (``tf.__internal__.tracking.AutoTrackable``) whose attributes
    ``tf.saved_model.save`` follows; ``tf.Module`` would also track every attribute's
    submodules and name scopes."""
    return tf.__internal__.tracking.AutoTrackable()


# -- other libraries ----------------------------------------------------------------------
@contextlib.contextmanager
def tf_keras_safe_mode():
    """tf-keras's safe mode for a config rebuilt with ``model_from_json``: a ``Lambda`` with
    Python bytecode raises instead of running. tf-keras's legacy HDF5 path never sets it, and
    its public ``load_model(safe_mode=True)`` applies it to ``.keras`` archives only. Reaches
    into ``tf_keras.src.saving.serialization_lib.SafeModeScope``. mwconv audits the config
    before this (``formats.config_audit``): the scope is the second lock, and without it the
    first still holds."""
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:            # a tf-keras without it: the audit alone decides
        yield
        return
    with SafeModeScope(True):
        yield


def read_npy_header(fp, version):
    """The header of a ``.npy`` file of format 3.0 (``numpy.lib._format_impl._read_array_header``;
    ``numpy.lib.format._read_array_header`` before NumPy 2): NumPy's public readers cover
    formats 1.0 and 2.0 only."""
    try:
        from numpy.lib._format_impl import _read_array_header
    except ImportError:
        from numpy.lib.format import _read_array_header
    return _read_array_header(fp, version)
