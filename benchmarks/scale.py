"""Memory and time at scale: every mwconv step beside plain Keras, each step a
separate process.

Builds a model of Dense layers holding about --gib GiB of float32 weights W and
saves its `.weights.h5`, then runs, each in a fresh process whose TensorFlow,
Keras, ONNX and onnxruntime are imported before the clock and the memory
baseline start (peak RSS is reset through /proc/self/clear_refs):

  import          mwconv import W.weights.h5 --model factory -o m.keras
                  beside Keras: build + model.load_weights + model.save(plain.keras)
  export FORMAT   mwconv export m.keras --format FORMAT (verified, as by default)
                  beside Keras for saved_model: load_model(plain.keras) + model.export;
                  for keras: load_model(plain.keras) + model.save. Keras loads the file
                  it wrote itself, so its figures owe nothing to mwconv's file
  verify FORMAT   mwconv verify ARTIFACT --reference m.keras

Prints seconds and peak RSS growth above the baseline as a multiple of W, and the
ratio of mwconv's export-with-verify time to Keras's export time. Every mwconv
step must exit 0 (its checks pass), else the script stops.

    .venv/bin/python benchmarks/scale.py --gib 2
    .venv/bin/python benchmarks/scale.py --gib 8 --formats saved_model onnx
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
from mwconv._quiet import import_quietly
for name in ("tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx"):
    import_quietly(name)
import keras
import mwconv.layers
sys.path.insert(0, os.environ["SCALE_DIR"])
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                                       # reset the peak RSS (VmHWM) to the current RSS
base = status("VmRSS")
step, args = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
code = 0
if step == "keras-load":
    from factory import build
    model = build()
    model.load_weights(args[0])
    model.save(args[1])
elif step == "keras-export":
    keras.saving.load_model(args[0]).export(args[1], verbose=False)
elif step == "keras-save":
    keras.saving.load_model(args[0]).save(args[1])
else:
    from mwconv.cli import main
    try:
        main([step] + args, standalone_mode=False)
    except SystemExit as e:
        code = e.code or 0
    code = code if isinstance(code, int) else 1
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak": status("VmHWM") - base, "code": code}))
"""

FACTORY = """
import keras

def build():
    inp = keras.Input(({width},), name="x")
    h = inp
    for i in range({layers}):
        h = keras.layers.Dense({width}, activation="tanh", name=f"base_{{i}}")(h)
    return keras.Model(inp, keras.layers.Dense(16, name="head")(h), name="scale")
"""

SUFFIX = {"saved_model": "", "onnx": ".onnx", "keras": ".keras", "safetensors": ".safetensors",
          "weights_h5": ".weights.h5"}
PLAIN = {"saved_model": "keras-export", "keras": "keras-save"}


def run(step, *args, work):
    env = dict(os.environ, SCALE_DIR=work, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", CHILD, step, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=work)
    if proc.returncode:
        sys.exit(f"{step} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["code"]:
        sys.exit(f"{step} {' '.join(map(str, args))} exited {result['code']}:\n{proc.stderr[-3000:]}")
    return result


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--formats", nargs="*", default=["saved_model", "onnx", "keras", "safetensors"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    layers = max(1, round(args.gib * 2**30 / (args.width * args.width * 4)))
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("SCALE_TMP")) as work:
        with open(os.path.join(work, "factory.py"), "w") as f:
            f.write(FACTORY.format(width=args.width, layers=layers))
        prep = ("import sys; sys.path.insert(0, sys.argv[1]); from mwconv._quiet import import_quietly; "
                "import_quietly('keras'); from factory import build; m = build(); m.save_weights(sys.argv[2]); "
                "print(sum(int(v.numpy().nbytes) for v in m.weights))")
        weights = os.path.join(work, "w.weights.h5")
        w = int(subprocess.run([sys.executable, "-c", prep, work, weights], capture_output=True, text=True,
                               check=True).stdout.split()[-1])
        model = os.path.join(work, "m.keras")
        plain_model = os.path.join(work, "plain.keras")
        rows.append(("import", run("import", weights, "--model", os.path.join(work, "factory.py:build"), "-o", model,
                                   work=work), run("keras-load", weights, plain_model, work=work)))
        os.remove(weights)
        for fmt in args.formats:          # each output is removed once measured: disk stays near 4 W
            out = os.path.join(work, f"out_{fmt}{SUFFIX[fmt]}")
            plain = None
            if fmt in PLAIN:
                target = os.path.join(work, f"plain_{fmt}{SUFFIX[fmt]}")
                plain = run(PLAIN[fmt], plain_model, target, work=work)
                remove(target)
            rows.append((f"export {fmt}", run("export", model, "--format", fmt, "-o", out, work=work), plain))
            rows.append((f"verify {fmt}", run("verify", out, "--reference", model, work=work), None))
            remove(out)
            remove(out + ".data")
        remove(plain_model)
    report(rows, w, args.json)


def report(rows, w, as_json):
    if as_json:
        print(json.dumps({"weight_bytes": w, "steps": [{"step": s, "mwconv": m, "keras": k} for s, m, k in rows]}))
        return
    print(f"W = {w / 2**30:.2f} GiB of weights")
    print(f"{'step':22} {'mwconv s':>9} {'peak/W':>7}   {'Keras s':>8} {'peak/W':>7}  mwconv/Keras time")
    for step, m, k in rows:
        plain = f"{k['seconds']:8.1f} {k['peak'] / w:7.2f}   {m['seconds'] / k['seconds']:.2f}" if k else ""
        print(f"{step:22} {m['seconds']:9.1f} {m['peak'] / w:7.2f}   {plain}")


if __name__ == "__main__":
    main()
