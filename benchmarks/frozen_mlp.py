"""The model the export benchmarks use: a frozen MLP base of MixedDense layers
(the pretrained part) and a small trainable head."""


def frozen_mlp(weight_bytes, width, activation="tanh"):
    """About ``weight_bytes`` of float32 weights in ``width``-wide frozen layers, seeded values."""
    import keras
    import numpy as np

    from mwconv.layers import MixedDense

    layers = max(1, -(-int(weight_bytes) // (width * width * 4)))
    inp = keras.Input((width,), name="x")
    h = inp
    for i in range(layers):
        h = MixedDense(width, activation=activation, frozen=["kernel", "bias"], name=f"base_{i}")(h)
    model = keras.Model(inp, keras.layers.Dense(16, name="head")(h))
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.standard_normal(v.shape, dtype=np.float32) / np.float32(np.sqrt(width)))
    return model
