"""The Keras 3 twin of the sample network (samples/tfkeras2_full.h5), for importing
weights-only files such as samples/keras3.weights.h5 and samples/tfkeras2_weights.h5."""

import keras


def build():
    image = keras.Input((8, 8, 3), name="image")
    ids = keras.Input((5,), dtype="int32", name="ids")
    x = keras.layers.Conv2D(4, 3, name="conv")(image)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    e = keras.layers.Embedding(20, 6, name="emb")(ids)
    e = keras.layers.Flatten(name="flat")(e)
    h = keras.layers.Concatenate(name="concat")([x, e])
    h = keras.layers.Dense(7, activation="relu", name="fc1")(h)
    out = keras.layers.Dense(3, name="head")(h)
    return keras.Model({"image": image, "ids": ids}, out, name="reference_net")
