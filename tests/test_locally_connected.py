"""tf-keras's ``LocallyConnected1D/2D``, which Keras 3 removed, imported from files tf-keras
writes: mwconv's layers of the same name load tf-keras's weights in all three
``implementation`` layouts and compute tf-keras's numbers (padding, strides, both data
formats), hold a frozen kernel through a training step and a reload, and run on any backend."""

import itertools

import numpy as np
import pytest

import mwconv
from tests.helpers import run_json
from tests.tfkeras_zoo import perturb


def _tfk():
    from mwconv._quiet import import_quietly
    return import_quietly("tf_keras")


CASES = [(rank, impl, padding, fmt, strides)
         for rank, impl, padding, fmt, strides in itertools.product((1, 2), (1, 2, 3), ("valid", "same"),
                                                                     ("channels_last", "channels_first"), (1, 2))
         if not (impl == 1 and padding == "same")]           # tf-keras's implementation 1 is valid-only


def _ids(case):
    rank, impl, padding, fmt, strides = case
    return f"{rank}d-impl{impl}-{padding}-{fmt.split('_')[1]}-s{strides}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_tf_keras_locally_connected_imports_with_tf_keras_numbers(case, tmp_path):
    rank, impl, padding, fmt, strides = case
    tfk = _tfk()
    tfk.utils.set_random_seed(sum(map(ord, _ids(case))))
    shape = (7, 3) if rank == 1 else (6, 5, 3)
    if fmt == "channels_first":
        shape = shape[-1:] + shape[:-1]
    layer = (tfk.layers.LocallyConnected1D if rank == 1 else tfk.layers.LocallyConnected2D)(
        4, 3, strides=strides, padding=padding, data_format=fmt, implementation=impl, activation="tanh",
        name="local")
    inp = tfk.Input(shape, name="x")
    model = tfk.Model(inp, tfk.layers.Dense(2, name="head")(tfk.layers.Flatten()(layer(inp))))
    perturb(model)
    model.save(tmp_path / "local.h5")
    code, report, err = run_json("import", tmp_path / "local.h5", "--train", "head/*", "-o", tmp_path / "l.keras")
    assert code == 0, err
    assert {w["target"]: w["trainable"] for w in report["weights"]} == {
        "local/kernel": False, "local/bias": False, "head/kernel": True, "head/bias": True}
    x = np.random.default_rng(0).uniform(-1, 1, (3, *shape)).astype("float32")
    imported = mwconv.load_model(tmp_path / "l.keras")
    assert type(imported.get_layer("local")).__name__ == ("LocallyConnected1D" if rank == 1 else "LocallyConnected2D")
    np.testing.assert_allclose(np.asarray(imported(x)), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_a_frozen_kernel_holds_through_a_training_step_and_a_reload(tmp_path):
    import keras

    from mwconv.layers import LocallyConnected2D
    from mwconv.testing import run_mixed_layer_contract
    x = np.random.default_rng(1).standard_normal((2, 6, 5, 3)).astype("float32")
    for impl in (1, 2, 3):
        layer = LocallyConnected2D(4, 3, implementation=impl, frozen=["kernel"], name=f"local{impl}")
        reloaded = run_mixed_layer_contract(layer, x, tmp_path, trainable=["bias"], frozen=["kernel"])
        assert isinstance(reloaded.layers[-1], LocallyConnected2D) and reloaded.layers[-1].implementation == impl
    with pytest.raises(ValueError, match="implementation=1 supports padding='valid' only"):
        LocallyConnected2D(4, 3, padding="same")
    assert keras.saving.get_registered_name(LocallyConnected2D) == "mwconv>LocallyConnected2D"


def test_the_layers_run_under_jax_with_the_same_numbers(tmp_path):
    """A .keras file holding all three layouts, written under TensorFlow, reloads and runs
    under the JAX backend (TensorFlow not imported) with the same outputs."""
    import json
    import os
    import subprocess
    import sys

    import keras

    from mwconv.layers import LocallyConnected1D, LocallyConnected2D
    pytest.importorskip("jax", reason="jax is installed with the test extras")
    inp = keras.Input((6, 5, 3), name="x")
    outs = [LocallyConnected2D(2, 3, implementation=i, padding="same" if i > 1 else "valid", strides=2,
                               frozen=["kernel"], name=f"l{i}")(inp) for i in (1, 2, 3)]
    flat = keras.layers.Reshape((-1, 3))(inp)
    outs.append(LocallyConnected1D(2, 2, implementation=3, data_format="channels_first", name="l1d")(flat))
    model = keras.Model(inp, [keras.layers.Flatten()(o) for o in outs])
    for w in model.weights:
        w.assign(np.random.default_rng(len(w.path)).standard_normal(w.shape).astype("float32"))
    model.save(tmp_path / "lc.keras")
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = ("import json, sys, numpy as np, mwconv, keras\n"
              "m = mwconv.load_model(sys.argv[1])\n"
              "ys = m(np.load(sys.argv[2]))\n"
              "print(json.dumps({'backend': keras.backend.backend(), 'tf': 'tensorflow' in sys.modules,\n"
              "                  'frozen': sorted(w.path for w in m.weights if not w.trainable),\n"
              "                  'y': [np.asarray(y).tolist() for y in ys]}))\n")
    env = dict(os.environ, KERAS_BACKEND="jax")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "lc.keras"), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc["backend"] == "jax" and doc["frozen"] == ["l1/kernel", "l2/kernel", "l3/kernel"]
    for got, want in zip(doc["y"], model(x)):
        np.testing.assert_allclose(np.asarray(got, "float32"), np.asarray(want), rtol=1e-5, atol=1e-5)
