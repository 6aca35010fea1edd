"""Import throughput and memory against Keras's own `load_weights`, side by side.

Writes a Keras 3 `.weights.h5` of a frozen MLP with about --mib MiB of weights,
then, each in a fresh process: (a) build the model and `model.load_weights`,
(b) `mwconv.import_weights` of the same file into the same model factory.
Prints seconds and peak RSS growth above the process's state after importing
the frameworks, each as a multiple of the weight bytes W, and mwconv/Keras ratios.

    .venv/bin/python benchmarks/import_speed.py --mib 256
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from mwconv._quiet import import_quietly
keras = import_quietly("keras")
import mwconv.layers
from mwconv.convert.importer import import_weights
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
base = status("VmRSS")
t0 = time.perf_counter()
if sys.argv[1] == "keras":
    from factory import build
    model = build()
    model.load_weights(sys.argv[2])
else:
    model, report = import_weights(sys.argv[2], model=sys.argv[3] + "/factory.py:build")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_growth": status("VmHWM") - base}))
"""

FACTORY = """
import keras

def build():
    inp = keras.Input(({width},), name="x")
    h = inp
    for i in range({layers}):
        h = keras.layers.Dense({width}, activation="tanh", name=f"base_{{i}}")(h)
    return keras.Model(inp, keras.layers.Dense(16, name="head")(h))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width = 2048
    layers = max(1, -(-(args.mib << 20) // (width * width * 4)))
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "factory.py"), "w") as f:
            f.write(FACTORY.format(width=width, layers=layers))
        prep = ("import sys; sys.path.insert(0, sys.argv[1]); from mwconv._quiet import import_quietly; "
                "import_quietly('keras'); from factory import build; m = build(); m.save_weights(sys.argv[2]); "
                "print(sum(int(v.numpy().nbytes) for v in m.weights))")
        weights = os.path.join(tmp, "w.weights.h5")
        w_bytes = int(subprocess.run([sys.executable, "-c", prep, tmp, weights], capture_output=True, text=True,
                                     check=True).stdout.split()[-1])
        result = {"weight_bytes": w_bytes}
        for kind in ("keras", "mwconv"):
            out = subprocess.run([sys.executable, "-c", CHILD, kind, weights, tmp], capture_output=True, text=True,
                                 check=True)
            result[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    result["time_ratio"] = result["mwconv"]["seconds"] / result["keras"]["seconds"]
    result["memory_ratio"] = result["mwconv"]["peak_growth"] / max(result["keras"]["peak_growth"], 1)
    if args.json:
        print(json.dumps(result))
        return
    print(f"weights W = {w_bytes / 2**20:.1f} MiB")
    print(f"{'':22} {'seconds':>8} {'peak growth / W':>16}")
    for kind, label in (("keras", "keras load_weights"), ("mwconv", "mwconv import")):
        r = result[kind]
        print(f"{label:22} {r['seconds']:8.2f} {r['peak_growth'] / w_bytes:16.2f}")
    print(f"mwconv / keras: time {result['time_ratio']:.2f}, peak memory {result['memory_ratio']:.2f}")


if __name__ == "__main__":
    main()
