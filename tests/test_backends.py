"""Loading and verifying .keras artifacts where TensorFlow is not importable, as on GPU
hosts that have PyTorch or JAX only; and the GPU check script's path on CPU devices."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NO_TENSORFLOW = """
import importlib.machinery, json, sys
class Absent:
    # TensorFlow as on a host without it: importing it fails (probes that only ask
    # find_spec, as torch does, get a spec without an origin)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "tf2onnx"):
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise ImportError(f"No module named {spec.name!r} (hidden by the test)")
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, Absent())
import mwconv
model = mwconv.load_model(sys.argv[1])
report = mwconv.verify(sys.argv[1], reference=sys.argv[1], checks=["partition", "outputs", "train-step", "devices"])
print(json.dumps({"backend": __import__("keras").backend.backend(), "tensorflow": "tensorflow" in sys.modules,
                  "trainable": [w.path for w in model.trainable_weights], "report": report.to_dict()}))
"""


def _backend_missing(name):
    return importlib.util.find_spec(name) is None


@pytest.fixture(scope="module")
def imported(samples, tmp_path_factory):
    path = tmp_path_factory.mktemp("backends") / "m.keras"
    assert run_cli("import", samples / "tfkeras2_full.h5", "--train", "head/*", "-o", path)[0] == 0
    return path


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_load_and_verify_without_tensorflow(backend, imported):
    if _backend_missing(backend):
        pytest.skip(f"{backend} is not installed (the test extra brings jax; pip install torch for torch)")
    proc = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(imported)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ, KERAS_BACKEND=backend))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["backend"] == backend and doc["tensorflow"] is False
    assert doc["trainable"] == ["head/kernel", "head/bias"]
    statuses = {c["name"]: (c["status"], c["message"]) for c in doc["report"]["checks"]}
    assert statuses["partition"][0] == statuses["outputs"][0] == statuses["train-step"][0] == "pass", statuses
    assert statuses["devices"] == ("skipped", "no GPU visible")


JAX_TWO_DEVICES = dict(KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")


@pytest.mark.skipif(_backend_missing("jax"), reason="jax is not installed (it comes with the test extra)")
def test_gpu_check_script_compares_devices_under_jax():
    """Two host devices stand in for CPU and GPU: the script's whole path runs, TF32 off and on."""
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--devices", "cpu:0,cpu:1"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env=dict(os.environ, **JAX_TWO_DEVICES))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "✓ devices    2 devices agree (cpu:0, cpu:1; max abs diff 0); TF32 disabled for the comparison" in proc.stdout
    assert "wide_mlp: max abs difference against cpu:0: 0 with TF32 off, 0 with TF32 on" in proc.stdout
    assert "small_cnn: max abs difference against cpu:0" in proc.stdout


@pytest.mark.slow
def test_gpu_check_script_says_when_no_gpu_is_visible():
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no GPU visible under the tensorflow backend: the device check has nothing to compare" in proc.stdout
