"""ONNX graph import time beside onnx2tf's conversion time, per model, side by side.

Models: the PyTorch exports under tests/data/torch_onnx/ (or --models FILE...). Each
step runs in a fresh process, so framework start-up counts for both tools alike:
(a) `mwconv import MODEL.onnx -o MODEL.keras` (rebuild from the graph, frozen
weights, manifest), then checked against onnxruntime; (b) `onnx2tf -i MODEL.onnx
-o DIR -n` (when the onnx2tf command is installed). onnx2tf downloads a calibration
image file before converting; offline, this script writes a random stand-in of the
same shape where onnx2tf looks for it (its working folder), so the comparison runs
without a network. Prints seconds and the ratio onnx2tf / mwconv.

    .venv/bin/python benchmarks/onnx_import.py
    .venv/bin/python benchmarks/onnx_import.py --onnx2tf /path/to/venv/bin/onnx2tf
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHECK = r"""
import sys, numpy as np, onnxruntime as ort
import mwconv
model = mwconv.load_model(sys.argv[2])
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
spec = sess.get_inputs()[0]
shape = [d if isinstance(d, int) else 1 for d in spec.shape]
rng = np.random.default_rng(0)
x = rng.integers(0, 50, shape).astype(np.int64) if "int64" in spec.type else rng.standard_normal(shape).astype("float32")
want = sess.run(None, {spec.name: x})[0]
got = np.asarray(model(x))
print(float(np.abs(got - want).max() / max(1e-12, float(np.abs(want).max()))))
"""


def timed(cmd, **kwargs):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - t0, proc


def mwconv_import(model, work):
    out = os.path.join(work, os.path.basename(model)[:-5] + ".keras")
    seconds, proc = timed([os.path.join(os.path.dirname(sys.executable), "mwconv"), "import", model, "-o", out])
    if proc.returncode:
        return seconds, "exit %d: %s" % (proc.returncode, proc.stderr.strip().splitlines()[-1][:80])
    check = subprocess.run([sys.executable, "-c", CHECK, model, out], capture_output=True, text=True)
    error = check.stdout.strip().splitlines()[-1] if check.returncode == 0 else "check failed"
    return seconds, f"ok (rel error {float(error):.1e})" if check.returncode == 0 else error


def onnx2tf_convert(command, model, work):
    if command is None:
        return None, "onnx2tf not installed"
    out = os.path.join(work, os.path.basename(model)[:-5] + "_onnx2tf")
    seconds, proc = timed([command, "-i", model, "-o", out, "-n"], cwd=work, timeout=900)
    if proc.returncode:
        tail = (proc.stdout + proc.stderr).strip().splitlines()
        reason = next((line for line in reversed(tail) if "rror" in line), tail[-1] if tail else "")
        return seconds, "exit %d: %s" % (proc.returncode, reason.strip()[:80])
    return seconds, "ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="ONNX files (default: tests/data/torch_onnx/*.onnx)")
    parser.add_argument("--onnx2tf", default=shutil.which("onnx2tf"), help="the onnx2tf command")
    args = parser.parse_args()
    models = args.models or sorted(glob.glob(os.path.join(ROOT, "tests", "data", "torch_onnx", "*.onnx")))
    print(f"{'model':32} {'mwconv s':>9} {'onnx2tf s':>10} {'ratio':>6}  mwconv / onnx2tf")
    with tempfile.TemporaryDirectory() as work:
        import numpy as np
        stand_in = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
        np.save(os.path.join(work, "calibration_image_sample_data_20x128x128x3_float32.npy"), stand_in)
        for model in models:
            ms, mres = mwconv_import(model, work)
            os_, ores = onnx2tf_convert(args.onnx2tf, model, work)
            ratio = f"{os_ / ms:.1f}" if os_ is not None and ores == "ok" and mres.startswith("ok") else "-"
            o = f"{os_:.1f}" if os_ is not None else "-"
            print(f"{os.path.basename(model):32} {ms:9.1f} {o:>10} {ratio:>6}  {mres} / {ores}", flush=True)


if __name__ == "__main__":
    main()
