"""The Keras twin (NHWC) of samples/cnn_external.onnx: conv -> bn -> relu -> pool -> fc."""

import keras


def build():
    image = keras.Input((8, 8, 3), name="input")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(image)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(x)   # ONNX's default epsilon
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(5, name="fc")(x)
    return keras.Model(image, out, name="cnn")
