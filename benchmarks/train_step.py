"""Training cost of an imported model against stock Keras with the same frozen set,
side by side in one run, under every Keras backend that is installed.

    .venv/bin/python benchmarks/train_step.py                      # tensorflow, jax, torch where installed
    .venv/bin/python benchmarks/train_step.py --backends tensorflow --rounds 9

Cases (each a ratio mwconv / stock of the median time of a training step; rounds alternate
the two models so that machine noise falls on both alike):

- ``mobilenet_v2``: a Keras MobileNetV2 imported with ``--train 'predictions/*'`` against
  the stock model with ``layer.trainable = False`` on every other layer. Goal <= 1.03.
- ``transformer``: a 2-layer transformer encoder (Embedding, MultiHeadAttention,
  LayerNormalization, Dense) imported with the head trainable, against the same stock
  freezing. Goal <= 1.03.
- ``frozen_mask``: a 4-layer MLP of ``MixedDense(frozen_mask=...)`` (half of every kernel
  frozen) against the nearest stock model, the same MLP fully trainable. Reported.
- ``lora``: the MLP with ``MixedDense(adapter_rank=8)`` on frozen kernels against stock
  Keras's ``Dense.enable_lora(8)``. Reported.

Also reported: the cost of one ``FrozenGuard`` check (a sha256 pass over the frozen weights)
on the MobileNetV2, in training steps. Each backend runs in its own process (Keras picks
its backend once per process); the models are written once, by the TensorFlow backend.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

GOALS = {"mobilenet_v2": 1.03, "transformer": 1.03}


def write_models(folder):
    """pretrained .keras files of the two architectures and their mwconv imports."""
    import keras

    import mwconv

    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.5, classes=10)
    net.save(os.path.join(folder, "mobilenet_v2.keras"))
    transformer().save(os.path.join(folder, "transformer.keras"))
    for name, head in (("mobilenet_v2", "predictions/*"), ("transformer", "head/*")):
        mwconv.import_weights(os.path.join(folder, f"{name}.keras"), train=[head],
                              output=os.path.join(folder, f"{name}.imported.keras"), force=True)


def transformer(vocab=2000, length=64, width=128, heads=4, blocks=2):
    import keras
    from keras import layers

    ids = keras.Input((length,), dtype="int32", name="ids")
    x = layers.Embedding(vocab, width, name="embed")(ids)
    for i in range(blocks):
        a = layers.MultiHeadAttention(heads, width // heads, name=f"attn_{i}")(x, x)
        x = layers.LayerNormalization(name=f"ln_a_{i}")(x + a)
        f = layers.Dense(width * 4, activation="gelu", name=f"ffn_in_{i}")(x)
        f = layers.Dense(width, name=f"ffn_out_{i}")(f)
        x = layers.LayerNormalization(name=f"ln_f_{i}")(x + f)
    out = layers.Dense(8, name="head")(layers.GlobalAveragePooling1D(name="pool")(x))
    return keras.Model(ids, out, name="encoder")


def mlp(kind, width=512, depth=4, rank=8):
    import keras

    from mwconv.layers import MixedDense

    keras.utils.set_random_seed(0)
    x = inp = keras.Input((width,), name="x")
    rng = np.random.default_rng(0)
    for i in range(depth):
        if kind == "mask":
            x = MixedDense(width, activation="relu", frozen_mask=rng.random((width, width)) < 0.5, name=f"d{i}")(x)
        elif kind == "lora":
            x = MixedDense(width, activation="relu", adapter_rank=rank, frozen=["bias"], name=f"d{i}")(x)
        else:
            layer = keras.layers.Dense(width, activation="relu", name=f"d{i}")
            x = layer(x)
            if kind == "stock_lora":
                layer.enable_lora(rank)
    return keras.Model(inp, keras.layers.Dense(10, name="head")(x))


def stock_frozen(path, head):
    import keras

    model = keras.saving.load_model(path)
    for layer in model.layers:
        layer.trainable = layer.name == head
    return model


def _batch(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    inp = model.inputs[0]
    shape = (batch,) + tuple(inp.shape[1:])
    if "int" in str(inp.dtype):
        x = rng.integers(0, 2000, shape).astype("int32")
    else:
        x = rng.normal(size=shape).astype("float32")
    y = rng.normal(size=(batch,) + tuple(model.outputs[0].shape[1:])).astype("float32")
    return x, y


def _timed(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    _ = np.asarray(model.weights[-1].numpy() if hasattr(model.weights[-1], "numpy") else model.weights[-1])
    return (time.perf_counter() - start) / steps


def side_by_side(stock, mixed, batch, steps, rounds):
    """Median seconds per step of each model and the median of the per-round ratios."""
    import keras

    pairs = []
    for model in (stock, mixed):
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    x, y = _batch(stock, batch)
    for model in (stock, mixed):
        _timed(model, x, y, 3)                         # trace and warm up
    for r in range(rounds):
        order = (stock, mixed) if r % 2 == 0 else (mixed, stock)
        times = {id(m): _timed(m, x, y, steps) for m in order}
        pairs.append((times[id(stock)], times[id(mixed)]))
    s, m = np.median([p[0] for p in pairs]), np.median([p[1] for p in pairs])
    return s, m, float(np.median([b / a for a, b in pairs]))


def guard_cost(model, step_seconds):
    from mwconv.callbacks import FrozenGuard

    guard = FrozenGuard()
    guard.set_model(model)
    guard.on_train_begin()
    start = time.perf_counter()
    for _ in range(5):
        guard._check("benchmark")
    per_check = (time.perf_counter() - start) / 5
    frozen = sum(int(np.prod(v.shape)) * 4 for v in model.non_trainable_weights)
    return per_check, frozen, per_check / step_seconds


def child(folder, rounds, steps):
    import keras

    import mwconv

    rows = []
    for name, head, batch in (("mobilenet_v2", "predictions", 32), ("transformer", "head", 16)):
        stock = stock_frozen(os.path.join(folder, f"{name}.keras"), head)
        mixed = mwconv.load_model(os.path.join(folder, f"{name}.imported.keras"))
        assert [w.path for w in mixed.trainable_weights] == [f"{head}/kernel", f"{head}/bias"]
        s, m, ratio = side_by_side(stock, mixed, batch, steps, rounds)
        rows.append({"case": name, "stock_ms": s * 1e3, "mwconv_ms": m * 1e3, "ratio": ratio,
                     "stock": "layer.trainable = False"})
        if name == "mobilenet_v2":
            per_check, frozen, in_steps = guard_cost(mixed, m)
            guard = {"check_ms": per_check * 1e3, "frozen_mib": frozen / 2**20, "in_steps": in_steps}
    for case, kind, stock_kind, what in (("frozen_mask", "mask", "plain", "Dense, all trainable"),
                                         ("lora", "lora", "stock_lora", "Dense.enable_lora(8)")):
        s, m, ratio = side_by_side(mlp(stock_kind), mlp(kind), 64, steps, rounds)
        rows.append({"case": case, "stock_ms": s * 1e3, "mwconv_ms": m * 1e3, "ratio": ratio, "stock": what})
    return {"backend": keras.backend.backend(), "rows": rows, "guard": guard}


def installed_backends():
    return [b for b, module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch"))
            if importlib.util.find_spec(module) is not None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="*", help="default: every installed one")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.rounds, args.steps)))
        return 0
    backends = args.backends or installed_backends()
    folder = tempfile.mkdtemp(prefix="mwconv-train-step-")
    write_models(folder)
    failed = False
    print(f"{'backend':<11} {'case':<13} {'stock ms':>9} {'mwconv ms':>10} {'ratio':>6}  goal   stock side")
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run([sys.executable, __file__, "--child", folder, "--rounds", str(args.rounds),
                               "--steps", str(args.steps)], env=env, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"{backend:<11} failed: {proc.stderr.strip().splitlines()[-1:]}")
            failed = True
            continue
        result = json.loads(line[len("RESULT "):])
        for r in result["rows"]:
            goal = GOALS.get(r["case"])
            mark = "" if goal is None else ("ok" if r["ratio"] <= goal else "OVER")
            print(f"{backend:<11} {r['case']:<13} {r['stock_ms']:>9.2f} {r['mwconv_ms']:>10.2f} {r['ratio']:>6.3f}  "
                  f"{'<=' + str(goal) if goal else '-':<6} {r['stock']} {mark}")
        g = result["guard"]
        print(f"{backend:<11} FrozenGuard check on mobilenet_v2: {g['check_ms']:.1f} ms over {g['frozen_mib']:.1f} MiB "
              f"of frozen weights = {g['in_steps']:.2f} training steps")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
