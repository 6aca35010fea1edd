"""Peak memory of reading ONE tensor from a large weights file, per format.

Writes, for each format, a file of --size-mib MiB made of 1 MiB tensors (a
.npy is one tensor of that size), then in a fresh process opens it with
mwconv.open_source, reads one tensor and reports how far the process's peak RSS (VmHWM) rose above
its RSS just before opening (Linux). Prints ratio = peak growth / file size (lower is better; reading the
whole file would be >= 1.0). A .npy holds one tensor: it comes back
memory-mapped, so only the part that is used (1 MiB here) is read.

    .venv/bin/python benchmarks/lazy_read.py --size-mib 1024
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TENSOR = 1 << 20  # bytes per tensor

CHILD = r"""
import sys, numpy as np
import h5py, onnx
from mwconv import open_source
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
with open_source(sys.argv[2]) as warm:
    warm.get_tensor(warm.keys()[0])
base = status("VmRSS")  # now, not the import-time peak: conservative
with open_source(sys.argv[1]) as src:
    name = src.keys()[len(src.keys()) // 2]
    arr = np.asarray(src.get_tensor(name))
    total = float(arr.reshape(-1)[: (1 << 20) // 4].sum())  # touch 1 MiB of it
print(status("VmHWM") - base)
"""


def write_files(folder, size):
    count = max(1, size // TENSOR)
    rng = np.random.default_rng(0)
    block = rng.standard_normal(TENSOR // 4).astype(np.float32)
    paths = {}
    # HDF5, generic tree
    import h5py
    paths["hdf5"] = os.path.join(folder, "big.h5")
    with h5py.File(paths["hdf5"], "w") as f:
        for i in range(count):
            f[f"layer{i}/w"] = block
    # npz (stored)
    paths["npz"] = os.path.join(folder, "big.npz")
    np.savez(paths["npz"], **{f"t{i}": block for i in range(count)})
    # npy (one tensor)
    paths["npy"] = os.path.join(folder, "big.npy")
    np.save(paths["npy"], np.tile(block, count))
    # ONNX with external data
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(block, f"w{i}") for i in range(count)]
    graph = helper.make_graph([helper.make_node("Identity", ["w0"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    paths["onnx"] = os.path.join(folder, "big.onnx")
    onnx.save_model(helper.make_model(graph), paths["onnx"], save_as_external_data=True,
                    all_tensors_to_one_file=True, location="big.onnx.data", size_threshold=0)
    small = os.path.join(folder, "small.npz")
    np.savez(small, a=np.ones(4))
    return paths, small


def measure(size_mib):
    size = size_mib << 20
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        paths, small = write_files(folder, size)
        for fmt, path in paths.items():
            out = subprocess.run([sys.executable, "-c", CHILD, path, small], capture_output=True, text=True, check=True)
            grew = int(out.stdout.strip().splitlines()[-1])
            file_bytes = os.path.getsize(path) + (os.path.getsize(path + ".data") if fmt == "onnx" else 0)
            results[fmt] = {"file_bytes": file_bytes, "peak_growth_bytes": grew, "ratio": grew / file_bytes}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.size_mib)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'format':8} {'file MiB':>9} {'peak growth MiB':>16} {'ratio':>7}")
    for fmt, r in results.items():
        print(f"{fmt:8} {r['file_bytes'] / 2**20:9.0f} {r['peak_growth_bytes'] / 2**20:16.1f} {r['ratio']:7.3f}")


if __name__ == "__main__":
    main()
