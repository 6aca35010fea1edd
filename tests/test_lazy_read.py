import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_reading_one_tensor_does_not_load_the_file():
    """benchmarks/lazy_read.py at 256 MiB: the peak RSS growth of reading one
    tensor stays far below the file size for every format."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "lazy_read.py"), "--size-mib", "256",
                          "--json"], capture_output=True, text=True, check=True, timeout=600)
    results = json.loads(out.stdout)
    assert set(results) == {"hdf5", "npz", "npy", "onnx"}
    for fmt, r in results.items():
        assert r["file_bytes"] >= 256 << 20, fmt
        assert r["peak_growth_bytes"] < 32 << 20, (fmt, r)
