"""The device check on sample models under the current Keras backend
(KERAS_BACKEND=tensorflow, torch or jax): each model is saved as .keras, verified
with `--require gpu` semantics (every visible device against the CPU, TF32 off),
then the largest CPU/GPU difference is measured with TF32 off and on, to show
what TF32 does to the numbers. Needs no TensorFlow under torch or JAX.

    KERAS_BACKEND=torch python scripts/gpu_check.py [--devices cpu:0,cuda:0] [--json-out FILE]

Exit 0 when every check passed, 1 when one failed, 3 when no GPU is visible
(nothing to compare; `--devices` can name CPU devices to exercise the path).
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sample_models():
    """A wide MLP (matmul-bound, where TF32 shows) and a small CNN, with frozen and trainable parts."""
    import keras

    from mwconv.layers import MixedConv2D, MixedDense

    rng = np.random.default_rng(0)
    x = keras.Input((1024,), name="features")
    h = MixedDense(2048, frozen=["kernel"], activation="relu", name="pretrained")(x)
    h = MixedDense(2048, frozen=["kernel", "bias"], activation="relu", name="pretrained_2")(h)
    mlp = keras.Model(x, keras.layers.Dense(16, name="head")(h), name="wide_mlp")
    image = keras.Input((64, 64, 3), name="image")
    c = MixedConv2D(64, 3, frozen=["kernel"], activation="relu", name="stem")(image)
    c = MixedConv2D(128, 3, strides=2, frozen=["kernel"], activation="relu", name="block")(c)
    c = keras.layers.GlobalAveragePooling2D(name="pool")(c)
    cnn = keras.Model(image, keras.layers.Dense(10, name="head")(c), name="small_cnn")
    for model in (mlp, cnn):
        for v in model.weights:
            v.assign(rng.standard_normal(v.shape).astype("float32") * 0.05)
    return [mlp, cnn]


def max_diff(art, probe, devices, tf32):
    from mwconv.verification import tf32_mode

    with tf32_mode(tf32):
        outs = {d: art.run(probe, device=d) for d in devices}
    base = outs[devices[0]]
    return max(float(np.max(np.abs(np.asarray(o, np.float64) - np.asarray(b, np.float64))))
               for d in devices[1:] for o, b in zip(outs[d], base))


def check(model, folder, devices):
    import mwconv
    from mwconv import modelio
    from mwconv.verification import probes
    from mwconv.formats import open_artifact

    path = os.path.join(folder, f"{model.name}.keras")
    model.save(path)
    report = mwconv.verify(path, reference=path, checks=["partition", "outputs", "devices"], require=["devices"],
                           devices=devices)
    art = open_artifact(path)
    probe = probes.random_inputs(modelio.input_specs(art.model), samples=8, seed=0)
    listed = report.check("devices").details.get("devices") or []
    row = {"model": model.name, "ok": report.ok, "devices": listed, "report": report.to_dict()}
    if len(listed) >= 2:
        row["max_abs_diff_tf32_off"] = max_diff(art, probe, listed, False)
        row["max_abs_diff_tf32_on"] = max_diff(art, probe, listed, True)
    return report, row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", help="comma-separated Keras device names (default: every visible device)")
    parser.add_argument("--json-out", help="also write the results as JSON to this file")
    args = parser.parse_args()
    from mwconv import _quiet

    _quiet.quiet_tensorflow()
    import keras

    from mwconv.formats.artifact import keras_devices

    backend = keras.backend.backend()
    devices = args.devices.split(",") if args.devices else None
    visible = keras_devices()
    print(f"backend {backend}, keras {keras.__version__}, visible devices: {', '.join(visible)}")
    if devices is None and not any(("gpu" in d.lower() or "cuda" in d.lower()) for d in visible):
        print(f"no GPU visible under the {backend} backend: the device check has nothing to compare")
        return 3
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="mwconv-gpu-check.") as folder:
        for model in sample_models():
            report, row = check(model, folder, devices)
            print(report.format())
            if "max_abs_diff_tf32_off" in row:
                print(f"  {model.name}: max abs difference against {row['devices'][0]}: "
                      f"{row['max_abs_diff_tf32_off']:.3g} with TF32 off, {row['max_abs_diff_tf32_on']:.3g} with TF32 on")
            rows.append(row)
            ok = ok and report.ok
    if args.json_out:
        with open(args.json_out, "w", encoding="utf8") as f:
            json.dump({"backend": backend, "visible": visible, "models": rows}, f, indent=2, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
