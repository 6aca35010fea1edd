"""TensorFlow functions of a Keras model, shared by the SavedModel and ONNX writers."""

from mwconv import _compat


# -- SavedModel ------------------------------------------------------------------
def serving_function(model):
    import tensorflow as tf

    from mwconv import modelio

    specs = modelio.input_specs(model)
    names = [n for n, _, _ in specs]
    signature = [tf.TensorSpec(tuple(shape), dtype, name=name) for name, shape, dtype in specs]
    outputs = modelio.output_names(model)
    keras = modelio.keras_api()

    @tf.function(input_signature=signature)
    def serve(*args):
        result = model(modelio.pack_inputs(model, dict(zip(names, args))), training=False)
        return dict(zip(outputs, keras.tree.flatten(result)))

    return serve, signature


def with_tf_flags(model):
    """A model whose backend variables carry Keras's effective trainable flags
    (a layer frozen with ``layer.trainable = False`` keeps trainable tf.Variables)."""
    trainable = {id(v) for v in model.trainable_weights}
    stale = [v.path for v in model.weights if id(v) not in trainable and v.value.trainable]
    if not stale:
        return model
    from mwconv.layers.conversion import convert_to_mixed
    return convert_to_mixed(model, {v.path for v in model.weights if id(v) not in trainable})


def stateless_function(model):
    """The model as a function of its inputs AND its weights, so that tf2onnx
    converts a graph without copying any weight (they become graph inputs)."""
    import tensorflow as tf

    from mwconv import modelio

    keras = modelio.keras_api()
    specs = modelio.input_specs(model)
    names = [n for n, _, _ in specs]
    trainable, others = list(model.trainable_variables), list(model.non_trainable_variables)
    variables = trainable + others
    weight_names = [f"mwconv_w_{i}" for i in range(len(variables))]
    signature = [tf.TensorSpec(tuple(shape), dtype, name=name) for name, shape, dtype in specs]
    # each weight enters with its dimensions unknown and gets them back from EnsureShape (which
    # tf2onnx turns into an Identity): TensorFlow's graph optimizer, which tf2onnx runs twice,
    # allocates and fills a stand-in tensor for every input of known shape, a second copy of all
    # the weights; for unknown dimensions it makes them 1
    signature += [tf.TensorSpec([None] * len(v.shape), v.dtype, name=n) for v, n in zip(variables, weight_names)]
    shapes = [tuple(v.shape) for v in variables]
    outputs = modelio.output_names(model)
    count, n_trainable = len(names), len(trainable)

    @tf.function(input_signature=signature)
    def serve(*args):
        inputs = args[:count]
        weights = [tf.ensure_shape(w, shape) for w, shape in zip(args[count:], shapes)]
        result, _ = model.stateless_call(weights[:n_trainable], weights[n_trainable:],
                                         modelio.pack_inputs(model, dict(zip(names, inputs))), training=False)
        return dict(zip(outputs, keras.tree.flatten(result)))

    with _compat.plain_grouped_convolutions(tf):
        concrete = serve.get_concrete_function()     # traced now; tf2onnx reuses this trace
    return serve, signature, dict(zip(weight_names, variables)), captured_constants(concrete)


def captured_constants(concrete):
    """``{graph input name: value}`` for the constants a traced function captured rather than
    took as arguments (a Normalization layer's mean given in its config): tf2onnx would make
    them inputs of the ONNX graph; the writer stores them as initializers instead."""
    captured = concrete.captured_inputs
    placeholders = concrete.graph.inputs[len(concrete.graph.inputs) - len(captured):]
    return {p.name: t.numpy() for p, t in zip(placeholders, captured)
            if t.dtype.name != "resource" and hasattr(t, "numpy")}


