"""The Keras twin of the PyTorch network whose state dict the samples hold
(samples/torch_state_dict.npz): conv -> bn -> relu -> pool -> fc1 -> proj -> fc2."""

import keras


def build():
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="stem_conv")(image)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(7, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(7, activation="relu", name="proj")(x)
    x = keras.layers.Dense(3, name="fc2")(x)
    out = keras.layers.Dense(2, name="new_head")(x)       # not in the state dict: trains
    return keras.Model(image, out, name="torch_net")
