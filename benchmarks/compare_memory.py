"""Peak memory of `mwconv compare` on a large model, beside the source check of verify.

Writes a tf-keras ResNet50 (random weights, --size x --size inputs) as a full-model .h5,
imports it, then in fresh processes runs, on the same probe of --samples samples:

- baseline: `mwconv.verify(imported, checks=["source"])`: the source and the model each run
  once on the probe, outputs only (and once more on the perturbed probe);
- compare: `mwconv.compare(source, imported)`: every paired tensor of both sides.

Each process reports how far its peak RSS (VmHWM) rose above its RSS after TensorFlow,
tf-keras and Keras were imported (Linux). Printed: both peaks, their ratio, the weight bytes
and the bytes of every paired tensor of one side (what compare holds per side).

    .venv/bin/python benchmarks/compare_memory.py --size 224 --samples 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
from mwconv._quiet import import_quietly
import_quietly("tensorflow")
import keras, tf_keras, numpy as np
import mwconv
from mwconv.localize import compare
base = status("VmRSS")
mode, source, model, samples = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {}
if mode == "compare":
    result = compare(source, model, samples=samples)
    out["paired"] = sum(r.status != "unpaired" for r in result.rows)
    out["tensor_bytes"] = sum(4 * int(np.prod(r.shape)) for r in result.rows if r.shape)
    out["ok"] = result.ok
else:
    report = mwconv.verify(model, model, checks=["source"], source=source, samples=samples)
    out["ok"] = report.ok
out["peak"] = status("VmHWM") - base
print(json.dumps(out))
"""


def write_source(folder, size):
    from mwconv._quiet import import_quietly
    import_quietly("tensorflow")
    import tf_keras

    model = tf_keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    path = os.path.join(folder, "resnet50.h5")
    model.save(path)
    return path, sum(int(w.numpy().nbytes) for w in model.weights)


def run(mode, source, model, samples):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, source, model, str(samples)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source, weight_bytes = write_source(tmp, args.size)
        import mwconv
        model = os.path.join(tmp, "resnet50.keras")
        mwconv.import_weights(source, output=model)
        baseline = run("verify", source, model, args.samples)
        ours = run("compare", source, model, args.samples)
    mib = 2 ** 20
    result = {"weight_mib": weight_bytes / mib, "tensor_mib_per_side": ours["tensor_bytes"] / mib,
              "paired": ours["paired"], "verify_source_peak_mib": baseline["peak"] / mib,
              "compare_peak_mib": ours["peak"] / mib, "ratio": ours["peak"] / baseline["peak"],
              "both_ok": baseline["ok"] and ours["ok"]}
    if args.json:
        print(json.dumps(result))
        return
    print(f"tf-keras ResNet50 {args.size}x{args.size}, {args.samples} samples: weights {result['weight_mib']:.0f} MiB, "
          f"{result['paired']} paired tensors = {result['tensor_mib_per_side']:.0f} MiB per side")
    print(f"{'run':28} {'peak RSS rise (MiB)':>20}")
    print(f"{'verify --checks source':28} {result['verify_source_peak_mib']:20.0f}")
    print(f"{'compare':28} {result['compare_peak_mib']:20.0f}")
    print(f"ratio compare / verify source: {result['ratio']:.2f}; both agree: {result['both_ok']}")


if __name__ == "__main__":
    main()
