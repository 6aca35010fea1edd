"""Fine-tuning an imported model in two stages, with proof that the frozen part
stayed frozen: import -> train the head -> unfreeze the last block -> train
again -> export a SavedModel -> drift check against the import.

    .venv/bin/python examples/finetune.py [FOLDER]      (default: ./finetune_demo)

The "pretrained" model is a tf-keras 2.x MobileNetV2 written here by tf-keras
itself (random weights: nothing is downloaded); the data is synthetic.
"""

import os
import sys

import numpy as np


def pretrained_h5(folder):
    """A tf-keras MobileNetV2 .h5 as tf-keras writes it (BatchNorm statistics not trivial)."""
    from mwconv._quiet import import_quietly

    tfk = import_quietly("tf_keras")
    tfk.utils.set_random_seed(0)
    net = tfk.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=4)
    rng = np.random.default_rng(0)
    for w in net.weights:
        if "variance" in w.name:
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        elif "moving_mean" in w.name:
            w.assign(rng.normal(0, 0.1, w.shape).astype("float32"))
    path = os.path.join(folder, "mobilenet_v2.h5")
    net.save(path)
    return path


def statistics(model):
    return {v.path: np.array(v.numpy()) for v in model.weights if "moving_" in v.path}


def main(folder):
    os.makedirs(folder, exist_ok=True)
    import keras

    import mwconv
    from mwconv.callbacks import FrozenGuard

    source = pretrained_h5(folder)
    imported = os.path.join(folder, "imported.keras")
    _, report = mwconv.import_weights(source, train=["predictions/*"], output=imported, force=True)
    print(report.statistics_line())

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 4, 64), 4)
    model = mwconv.load_model(imported)
    start = statistics(model)

    # stage 1: only the new head trains; every BatchNormalization runs in inference mode
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[FrozenGuard()])
    same = sum(np.array_equal(start[p], v) for p, v in statistics(model).items())
    print(f"stage 1: the backbone's {same} BatchNormalization statistics unchanged (of {len(start)})")

    # stage 2: unfreeze the last block, recompile (Keras's rule), train at a low learning rate
    change = mwconv.set_trainable(model, train=["block_16_*"])
    print(f"stage 2: {change}")
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[FrozenGuard(every_n_steps=2)])
    finetuned = os.path.join(folder, "finetuned.keras")
    model.save(finetuned)

    # export, then prove the frozen part of the import is still frozen and bit-identical
    serving = os.path.join(folder, "serving")
    mwconv.export(finetuned, "saved_model", serving, force=True)
    result = mwconv.verify(serving, reference=finetuned, baseline=imported, allow_unfrozen=["block_16_*"])
    print(result.format())
    if not result.ok:
        return 1
    print("drift check passed: every weight frozen at import is frozen and bit-identical in", serving)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "finetune_demo"))
