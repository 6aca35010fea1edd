"""TensorFlow functions of a Keras model, shared by the SavedModel and ONNX writers."""


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
    signature += [tf.TensorSpec(v.shape, v.dtype, name=n) for v, n in zip(variables, weight_names)]
    outputs = modelio.output_names(model)
    count, n_trainable = len(names), len(trainable)

    @tf.function(input_signature=signature)
    def serve(*args):
        inputs, weights = args[:count], list(args[count:])
        result, _ = model.stateless_call(weights[:n_trainable], weights[n_trainable:],
                                         modelio.pack_inputs(model, dict(zip(names, inputs))), training=False)
        return dict(zip(outputs, keras.tree.flatten(result)))

    return serve, signature, dict(zip(weight_names, variables))

