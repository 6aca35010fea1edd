"""The device check: the same inputs on every visible device, TF32 off for the comparison."""

import contextlib

from mwconv.verification.compare import compare_devices
from mwconv.verification.report import FAIL, PASS, SKIPPED, Check


def _tf32_switches(enabled):
    """(set, restore) pairs for every loaded framework's TF32 switch."""
    import sys

    out = []
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        old = tf.config.experimental.tensor_float_32_execution_enabled()
        out.append((lambda: tf.config.experimental.enable_tensor_float_32_execution(enabled),
                    lambda: tf.config.experimental.enable_tensor_float_32_execution(old)))
    if "torch" in sys.modules:
        import torch
        old_mm, old_cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        out.append((lambda: (setattr(torch.backends.cuda.matmul, "allow_tf32", enabled),
                             setattr(torch.backends.cudnn, "allow_tf32", enabled)),
                    lambda: (setattr(torch.backends.cuda.matmul, "allow_tf32", old_mm),
                             setattr(torch.backends.cudnn, "allow_tf32", old_cudnn))))
    if "jax" in sys.modules:
        import jax
        old_precision = jax.config.jax_default_matmul_precision
        out.append((lambda: jax.config.update("jax_default_matmul_precision", "tensorfloat32" if enabled
                                              else "highest"),
                    lambda: jax.config.update("jax_default_matmul_precision", old_precision)))
    return out


@contextlib.contextmanager
def tf32_mode(enabled):
    """TF32 matmuls/convolutions on GPUs on or off (TensorFlow, torch, JAX), restored afterwards."""
    switches = _tf32_switches(enabled)
    try:
        for turn, _ in switches:
            turn()
        yield
    finally:
        for _, restore in reversed(switches):
            restore()


def tf32_disabled():
    """Full float32 matmuls/convolutions on GPUs for the comparison."""
    return tf32_mode(False)


def check_devices(art, inputs, names, devices=None, atol=None, rtol=None):
    listed = list(dict.fromkeys(devices or art.devices()))
    gpus = [d for d in listed if "GPU" in d.upper() or "CUDA" in d.upper()]
    if devices is None and not gpus:
        return Check("devices", SKIPPED, "no GPU visible", details={"devices": listed})
    if len(listed) < 2:
        return Check("devices", SKIPPED, f"only one device ({listed[0] if listed else 'none'})",
                     details={"devices": listed})
    with tf32_disabled():
        results = {d: art.run(inputs, device=d) for d in listed}
    return device_check(results, names, atol, rtol)


def device_check(results, names, atol=None, rtol=None):
    """The comparison half of the device check (testable with any results)."""
    ok, rows, problems = compare_devices(results, names, atol, rtol)
    worst = max((r["max_abs"] or 0) for r in rows) if rows else 0.0
    devices = list(results)
    details = {"devices": devices, "tf32": "disabled", "comparisons": rows}
    if ok:
        return Check("devices", PASS, f"{len(devices)} devices agree ({', '.join(devices)}; max abs diff {worst:.3g}); "
                     "TF32 disabled for the comparison", details=details)
    return Check("devices", FAIL, f"devices disagree ({', '.join(devices)}); TF32 disabled for the comparison",
                 problems, details)

