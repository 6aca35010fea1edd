"""SavedModel size and time: `mwconv export --format saved_model` against
Keras 3's plain `model.export`, side by side in one run.

Builds an MLP with about --mib MiB of float32 weights (frozen base, trainable
head), exports it both ways and prints each artifact's bytes as a multiple of
the weight bytes, and the time ratio.

    .venv/bin/python benchmarks/saved_model_size.py --mib 256
"""

import argparse
import json
import os
import tempfile
import time


def build(mib):
    from frozen_mlp import frozen_mlp

    return frozen_mlp(mib << 20, 2048, "relu")


def size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from mwconv._quiet import import_quietly
    import_quietly("tensorflow")
    from mwconv.convert.exporter import export

    with tempfile.TemporaryDirectory() as tmp:  # warm TensorFlow up for both writers alike
        tiny = build(1)
        tiny.export(os.path.join(tmp, "a"), verbose=False)
        export(tiny, "saved_model", os.path.join(tmp, "b"), verify=False)
    model = build(args.mib)
    weight_bytes = sum(int(v.numpy().nbytes) for v in model.weights)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model.export(os.path.join(tmp, "plain"), verbose=False)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        export(model, "saved_model", os.path.join(tmp, "mwconv"), verify=False)
        t_ours = time.perf_counter() - t0
        plain, ours = size(os.path.join(tmp, "plain")), size(os.path.join(tmp, "mwconv"))
    result = {"weight_bytes": weight_bytes, "model_export_ratio": plain / weight_bytes,
              "mwconv_ratio": ours / weight_bytes, "model_export_s": t_plain, "mwconv_s": t_ours,
              "time_ratio": t_ours / t_plain}
    if args.json:
        print(json.dumps(result))
        return
    print(f"weights: {weight_bytes / 2**20:.1f} MiB")
    print(f"{'writer':24} {'bytes / weight bytes':>21} {'seconds':>8}")
    print(f"{'keras model.export':24} {result['model_export_ratio']:21.3f} {t_plain:8.2f}")
    print(f"{'mwconv export':24} {result['mwconv_ratio']:21.3f} {t_ours:8.2f}")
    print(f"time ratio mwconv / model.export: {result['time_ratio']:.2f}")


if __name__ == "__main__":
    main()
