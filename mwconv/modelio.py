"""Model I/O shared by import, export and verify: Keras loaded quietly with
mwconv's layers registered, inputs by name, outputs named, weights by path with
their effective trainable flags, and variables Keras does not track.

>>> specs = input_specs(model)          # doctest: +SKIP
>>> [name for name, _, _ in specs]
['image', 'ids']
"""

import numpy as np

from mwconv import _compat
from mwconv.manifest import weight_array  # noqa: F401  (read a weight without a copy)


def keras_api():
    """The ``keras`` module, imported quietly, with mwconv's layers registered."""
    from mwconv._quiet import import_quietly
    keras = import_quietly("keras")
    import mwconv.layers  # noqa: F401
    return keras


def input_specs(model):
    """[(name, shape, dtype)] in the model's flat input order."""
    keras = keras_api()
    struct = _compat.inputs_struct(model)
    tensors = keras.tree.flatten(struct) if struct is not None else list(model.inputs)
    return [(t.name, tuple(t.shape), str(t.dtype)) for t in tensors]


def output_names(model):
    keras = keras_api()
    names = []
    for t in keras.tree.flatten(model.outputs):
        layer = _compat.producing_layer(t)
        names.append(layer.name if layer is not None else t.name)
    if len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(names))]
    return names


def pack_inputs(model, inputs):
    """Arrange ``{name: array}`` the way the model was built (dict, list or single)."""
    keras = keras_api()
    struct = _compat.inputs_struct(model)
    names = [n for n, _, _ in input_specs(model)]
    flat = [inputs[n] for n in names]
    if struct is None:
        return flat[0] if len(flat) == 1 else flat
    return keras.tree.pack_sequence_as(struct, flat)


def call_model(model, inputs):
    keras = keras_api()
    out = model(pack_inputs(model, inputs), training=False)
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(out)]


def trainable_ids(model):
    """ids of the variables Keras trains (a layer frozen with ``trainable = False`` included)."""
    return {id(v) for v in model.trainable_weights}


def iter_weights(model):
    """``(path, value, trainable)`` per weight, one value in memory at a time."""
    trainable = trainable_ids(model)
    for v in model.weights:
        yield v.path, weight_array(v), id(v) in trainable


def release_memory():
    """Free dropped models now and hand their pages back (glibc keeps freed blocks in
    per-thread arenas that the next model's allocations may not reuse)."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps them, nothing breaks
        pass


def weights_by_path(model):
    """{path: (value, trainable)} with Keras's effective trainable flag."""
    keras = keras_api()
    trainable = trainable_ids(model)
    return {v.path: (np.array(keras.ops.convert_to_numpy(v.value)), id(v) in trainable) for v in model.weights}


def align_inputs(reference_specs, artifact_specs):
    """``{artifact input name: reference input name}`` for inputs whose names differ
    (matched by position), or ``{}`` when every name agrees.

    An in-memory model's inputs are often named ``input_layer_3`` while the same
    model reloaded says ``input_layer``; the order and shapes are what count.
    Raises UsageError when the count or a shape differs.
    """
    from mwconv.errors import UsageError

    ref_names = [n for n, _, _ in reference_specs]
    art_names = [n for n, _, _ in artifact_specs]
    if set(ref_names) == set(art_names):
        return {}
    if len(ref_names) != len(art_names):
        raise UsageError(f"the artifact has {len(art_names)} inputs ({', '.join(art_names)}) and the reference "
                         f"{len(ref_names)} ({', '.join(ref_names)})")
    for (rn, rs, _), (an, as_, _) in zip(reference_specs, artifact_specs):
        if len(rs) != len(as_) or any(r is not None and a is not None and r != a for r, a in zip(rs[1:], as_[1:])):
            raise UsageError(f"input {an!r} of the artifact has shape {as_}, input {rn!r} of the reference {rs}")
    return {a: r for a, r in zip(art_names, ref_names) if a != r}


def untracked_variables(model):
    """Backend variables held as layer attributes that Keras does not track
    (so they are never saved): ``[(layer name, attribute, class)]``."""
    tracked = set()
    for v in model.variables:
        tracked.add(id(v))
        tracked.add(id(getattr(v, "value", None)))
    found = []
    for layer in _compat.flatten_layers(model):
        for attr, value in vars(layer).items():
            cls = type(value)
            is_variable = "Variable" in cls.__name__ and cls.__module__.split(".")[0] in ("tensorflow", "torch", "jax")
            is_param = cls.__name__ == "Parameter" and cls.__module__.startswith("torch")
            if (is_variable or is_param) and id(value) not in tracked:
                found.append((layer.name, attr, f"{cls.__module__.split('.')[0]}.{cls.__name__}"))
    return found
