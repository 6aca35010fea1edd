"""Untrusted files: no command runs code from a file (Lambda layers escaped or nested, Python
functions, modules to import, custom objects, SavedModel-loading layers), a recorded source
path is never followed outside the artifact's folder, and a small file that declares huge
weights is refused before anything is allocated. A marker file proves that nothing ran."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest

from mwconv.formats.config_audit import code_in_config, declared_weights
from tests.helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tf_keras():
    from mwconv._quiet import import_quietly
    return import_quietly("tf_keras")


def _walk(config, visit):
    if isinstance(config, dict):
        visit(config)
        for value in config.values():
            _walk(value, visit)
    elif isinstance(config, list):
        for item in config:
            _walk(item, visit)


def _rewrite_h5_config(path, change):
    with h5py.File(path, "a") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        _walk(config, change)
        f.attrs["model_config"] = json.dumps(config).encode()


def _rewrite_keras_member(path, member, change):
    """Rewrite one member of a .keras archive, every other member kept with its compression."""
    with zipfile.ZipFile(path) as zf:
        items = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in items:
            if info.filename == member:
                data = change(data)
            zf.writestr(info, data)


def _code_writing_lambda(marker):
    return eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")    # noqa: S307 - the attack


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """tf-keras full-model .h5 files whose Lambda writes a marker file when it runs: one with
    the class name JSON-escaped, one with the Lambda nested in a Sequential."""
    tfk = _tf_keras()
    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "RAN"
    inp = tfk.Input((4,), name="x")
    out = tfk.layers.Lambda(_code_writing_lambda(marker), name="code")(tfk.layers.Dense(3, name="d")(inp))
    tfk.Model(inp, out).save(folder / "escaped.h5")
    raw = h5py.File(folder / "escaped.h5", "r").attrs["model_config"]
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert '"class_name": "Lambda"' in text
    with h5py.File(folder / "escaped.h5", "a") as f:
        f.attrs["model_config"] = text.replace('"class_name": "Lambda"', '"class_name": "Lamb\\u0064a"').encode()
    inner = tfk.Sequential([tfk.Input((4,)), tfk.layers.Dense(3, name="d"),
                            tfk.layers.Lambda(_code_writing_lambda(marker), name="code")], name="inner")
    inp = tfk.Input((4,), name="x")
    tfk.Model(inp, tfk.layers.Dense(2, name="head")(inner(inp))).save(folder / "nested.h5")
    marker.unlink()                          # building the models ran the lambda: the marker starts absent
    return folder, marker


@pytest.fixture(scope="module")
def benign(tmp_path_factory):
    tfk = _tf_keras()
    folder = tmp_path_factory.mktemp("benign")
    inp = tfk.Input((4,), name="x")
    tfk.Model(inp, tfk.layers.Dense(2, name="head")(tfk.layers.Dense(3, name="d")(inp))).save(folder / "ok.h5")
    assert run_cli("import", folder / "ok.h5", "-o", folder / "m.keras")[0] == 0
    return folder


@pytest.mark.parametrize("kind", ["escaped", "nested"])
def test_import_and_inspect_never_run_a_lambda(hostile, tmp_path, kind):
    folder, marker = hostile
    code, _, err = run_cli("import", folder / f"{kind}.h5", "-o", tmp_path / "out.keras")
    assert code == 3 and not (tmp_path / "out.keras").exists()
    assert err.strip() == (f"mwconv: error: {folder / f'{kind}.h5'}: layer 'code' is a Lambda layer, which holds "
                           "Python code; mwconv never runs code from a file (rebuild the model in Python and pass "
                           "--model)")
    assert run_cli("inspect", folder / f"{kind}.h5")[0] == 0
    assert not marker.exists(), "code from the file ran"


@pytest.mark.parametrize("kind", ["escaped", "nested"])
def test_source_check_never_runs_a_lambda_given_with_source(hostile, benign, kind):
    folder, marker = hostile
    code, out, _ = run_cli("--json", "verify", benign / "m.keras", "--checks", "source", "--source",
                           folder / f"{kind}.h5")
    check = json.loads(out)["checks"][-1]
    assert code == 0 and check["name"] == "source" and check["status"] == "skipped"
    assert check["message"].startswith("the source is not run: layer 'code' is a Lambda layer")
    assert not marker.exists(), "code from the file ran"


def _point_manifest_at(artifact, name, sha):
    def change(data):
        manifest = json.loads(data)
        for w in manifest["weights"]:
            w["provenance"].update(source_file=name, source_sha256=sha)
        return json.dumps(manifest).encode()
    _rewrite_keras_member(artifact, "mwconv_manifest.json", change)


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("kind", ["escaped", "nested"])
def test_a_recorded_source_beside_the_artifact_is_audited_before_it_runs(hostile, benign, tmp_path, kind):
    """A downloaded bundle: the manifest names the hostile file beside it, with its true sha256."""
    folder, marker = hostile
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    artifact = bundle / "m.keras"
    artifact.write_bytes((benign / "m.keras").read_bytes())
    (bundle / "source.h5").write_bytes((folder / f"{kind}.h5").read_bytes())
    _point_manifest_at(artifact, "source.h5", _sha(bundle / "source.h5"))
    code, out, _ = run_cli("--json", "verify", artifact, "--checks", "source")
    check = json.loads(out)["checks"][-1]
    assert code == 0 and check["status"] == "skipped", check
    assert check["message"].startswith("the source is not run: layer 'code' is a Lambda layer")
    assert not marker.exists(), "code from the file ran"


def test_a_recorded_source_outside_the_artifacts_folder_is_never_followed(hostile, benign, tmp_path):
    folder, marker = hostile
    (tmp_path / "art").mkdir()
    artifact = tmp_path / "art" / "m.keras"
    artifact.write_bytes((benign / "m.keras").read_bytes())
    for recorded in (f"../{folder.name}/escaped.h5", str(folder / "escaped.h5")):
        _point_manifest_at(artifact, recorded, _sha(folder / "escaped.h5"))
        code, out, _ = run_cli("--json", "verify", artifact, "--checks", "source")
        check = json.loads(out)["checks"][-1]
        assert code == 0 and check["status"] == "skipped"
        assert "is not in the artifact's folder (a recorded path outside it is never followed" in check["message"]
    assert not marker.exists()


# -- Keras 3 archives: functions, modules, custom objects, TFSMLayer ---------------------------
def _dense_archive(path):
    inp = keras.Input((4,), name="x")
    keras.Model(inp, keras.layers.Dense(3, name="wide")(inp)).save(path)


FORMS = {
    "module-function": ({"module": "os", "class_name": "function", "config": "system", "registered_name": None},
                        "layer 'wide' names the module 'os', which would be imported"),
    "builtins-function": ({"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"},
                          "layer 'wide' names the module 'builtins', which would be imported"),
    "python-lambda": ({"module": "builtins", "class_name": "__lambda__", "config": {"code": "AA=="},
                       "registered_name": None}, "layer 'wide' holds a serialized Python lambda"),
    "custom-object": ({"module": "evil_module", "class_name": "Evil", "config": {}, "registered_name": "Evil"},
                      "layer 'wide' names the module 'evil_module', which would be imported"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("role", ["import", "reference"])
def test_keras_archives_holding_code_are_refused_before_building(tmp_path, form, role):
    """A module planted on the path writes the marker if anything imports it."""
    marker = tmp_path / "RAN"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Evil: pass\n")
    _dense_archive(tmp_path / "bad.keras")
    obj, words = FORMS[form]

    def change(data):
        config = json.loads(data)
        _walk(config, lambda d: isinstance(d.get("config"), dict) and d["config"].get("name") == "wide"
              and d["config"].update(activation=obj))
        return json.dumps(config).encode()
    _rewrite_keras_member(tmp_path / "bad.keras", "config.json", change)
    args = (["import", "bad.keras", "-o", "out.keras"] if role == "import" else
            ["verify", "bad.keras", "--reference", "bad.keras"])
    proc = subprocess.run([sys.executable, "-m", "mwconv.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}"), timeout=600)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"mwconv: error: bad.keras: {words}; mwconv never runs code from "
                                                    "a file (rebuild the model in Python and pass --model)")
    assert not marker.exists() and not (tmp_path / "out.keras").exists()


@pytest.mark.parametrize("config,reason", [
    ({"class_name": "TFSMLayer", "config": {"name": "sm", "filepath": "/elsewhere"}},
     "layer 'sm' is a TFSMLayer, which loads another SavedModel from a path the file names"),
    ({"class_name": "Dense", "config": {"name": "d", "activation": {"class_name": "Lambda", "config": {
        "name": "act", "function": ["4wEAAA==", None, None], "function_type": "lambda"}}}},
     "layer 'act' is a Lambda layer, which holds Python code"),
    ({"class_name": "Custom", "config": {"name": "c", "fn": {"function_type": "lambda", "function": ["AA=="]}}},
     "layer 'c' holds a Python function"),
    ({"class_name": "Dense", "config": {"name": "d", "activation": {"class_name": "function", "config": {"x": 1},
                                                                    "module": "keras.activations"}}},
     "layer 'd' holds a function that is not named"),
    ({"class_name": "Dense", "config": {"name": "d", "activation": {"class_name": "function", "config": "write_file",
                                                                    "module": "tensorflow.io"}}},
     "layer 'd' names the module 'tensorflow.io', which would be imported"),
    ({"class_name": "Dense", "config": {"name": "d", "kernel_initializer": {           # as tf-keras records it
        "class_name": "VarianceScaling", "module": "tensorflow.python.ops.init_ops_v2", "config": {}}}}, None),
    ({"class_name": "Functional", "config": {"name": "m", "layers": [{"class_name": "Bidirectional", "config": {
        "name": "bi", "layer": {"class_name": "LSTM", "config": {"name": "l", "units": 3}}}}]}}, None),
])
def test_every_code_bearing_form_is_found_at_any_depth(config, reason):
    assert code_in_config(config) == reason


def test_declared_sizes_are_lower_bounds_that_hold_for_real_models():
    """On real Keras models, the declared lower bound never exceeds the weights Keras builds."""
    inp = keras.Input((12, 8), name="x")
    h = keras.layers.Conv1D(6, 3, name="conv")(inp)
    h = keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True, name="lstm"), name="bi")(h)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = keras.layers.GRU(3, name="gru")(h)
    h = keras.layers.Dense(7, name="dense")(h)
    model = keras.Model(inp, keras.layers.Embedding(11, 3, name="emb")(keras.ops.cast(h, "int32")))
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    declared = dict(declared_weights(config))
    built = {layer.name: sum(int(np.prod(v.shape)) for v in layer.weights) for layer in model.layers}
    assert set(declared) == {"conv", "forward_lstm", "backward_lstm", "mha", "gru", "dense", "emb"}
    assert declared["emb"] == built["emb"] == 33
    assert declared["forward_lstm"] + declared["backward_lstm"] <= built["bi"]
    assert all(declared[n] <= built[n] for n in declared if not n.endswith("_lstm"))


# -- declared sizes against the file's tensors ---------------------------------------------
RSS = ("import atexit, resource, sys\n"
       "atexit.register(lambda: print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
       "from mwconv.cli import main\nsys.argv[0] = 'mwconv'\nmain()\n")


def _run_measured(*args, cwd):
    proc = subprocess.run([sys.executable, "-c", RSS, *[str(a) for a in args]], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
    lines = proc.stderr.strip().splitlines()
    rss = int(lines[-1].split()[1]) * 1024
    return proc.returncode, lines[-2], rss


def _bomb_change(kind):
    def change(d):
        cfg = d.get("config")
        if isinstance(cfg, dict) and cfg.get("name") == "wide":
            cfg.update({"units": 2 ** 31} if kind == "dense" else {"input_dim": 2 ** 31})
    return change


def _tf_keras_bomb(path, kind):
    tfk = _tf_keras()
    inp = tfk.Input((4,), name="x", dtype="float32" if kind == "dense" else "int32")
    layer = tfk.layers.Dense(3, name="wide") if kind == "dense" else tfk.layers.Embedding(10, 4, name="wide")
    tfk.Model(inp, layer(inp)).save(path)
    _rewrite_h5_config(path, _bomb_change(kind))


def _keras_bomb(path, kind):
    inp = keras.Input((4,), name="x", dtype="float32" if kind == "dense" else "int32")
    layer = keras.layers.Dense(3, name="wide") if kind == "dense" else keras.layers.Embedding(10, 4, name="wide")
    keras.Model(inp, layer(inp)).save(path)
    _rewrite_keras_member(path, "config.json",
                          lambda data: json.dumps(_changed(json.loads(data), _bomb_change(kind))).encode())


def _changed(config, change):
    _walk(config, change)
    return config


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "embedding"])
@pytest.mark.parametrize("where", ["tf-keras-h5", "keras-import", "keras-reference"])
def test_a_small_file_declaring_huge_weights_is_refused_before_allocation(tmp_path, kind, where):
    if where == "tf-keras-h5":
        _tf_keras_bomb(tmp_path / "bomb.h5", kind)
        args, name = ["import", "bomb.h5", "-o", "out.keras"], "bomb.h5"
    else:
        _keras_bomb(tmp_path / "bomb.keras", kind)
        name = "bomb.keras"
        args = ["import", name, "-o", "out.keras"] if where == "keras-import" else \
            ["verify", name, "--reference", name]
    assert os.path.getsize(tmp_path / name) < 64 << 10
    code, last, rss = _run_measured(*args, cwd=tmp_path)
    declared = 2 ** 32 if kind == "dense" else 2 ** 33     # kernel and bias; the whole table
    assert code == 3, last
    assert last.startswith(f"mwconv: error: {name}: layer 'wide' declares at least {declared:,} weight elements"), last
    assert last.endswith("refused before allocating them (a corrupt or hostile config)")
    assert rss < 2 << 30, f"peak memory {rss / 2**30:.2f} GiB"
    assert not (tmp_path / "out.keras").exists()


# -- an allocation that still fails is one line --------------------------------------------
def test_out_of_memory_is_one_line_with_the_size_and_whose_fault(monkeypatch, samples):
    """A real numpy MemoryError raised inside a command: one line, exit 3 (no machine like
    this one holds it), never 'a bug in mwconv'."""
    import mwconv.inspect

    def allocate(*args, **kwargs):
        return np.empty((2 ** 40, 2 ** 10), dtype=np.float32)
    monkeypatch.setattr(mwconv.inspect, "inspect_source", allocate)
    code, _, err = run_cli("inspect", samples / "tfkeras2_full.h5")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert err.startswith("mwconv: error: out of memory: 4194304.0 GiB asked for at once (a float32 tensor of shape "
                          "(1099511627776, 1024)), more than this machine's ")
    assert "a bug in mwconv" not in err


def test_tensorflow_out_of_memory_is_the_machines_when_it_would_fit():
    import tensorflow as tf

    from mwconv.failures import as_failure
    error = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[2048,1048576] and "
                                                         "type float on /job:localhost/device:CPU:0")
    failure = as_failure(error, memory=64 << 30)
    assert failure.exit_code == 4
    assert str(failure) == ("out of memory: 8.0 GiB asked for at once (a float32 tensor of shape (2048, 1048576)), "
                            "more than this machine has free (64.0 GiB in all); close other programs, or run on a "
                            "machine with more memory")
    assert as_failure(error, memory=4 << 30).exit_code == 3


# -- SavedModels: a graph that touches files or calls Python is never run -------------------
@pytest.mark.parametrize("op", ["WriteFile", "EagerPyFunc"])
def test_a_saved_model_whose_graph_writes_files_or_calls_python_is_never_loaded(tmp_path, op):
    import tensorflow as tf

    marker = tmp_path / "RAN"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            if op == "WriteFile":
                tf.io.write_file(str(marker), tf.strings.as_string(tf.reduce_sum(x)))
                return {"y": x * 2.0}
            return {"y": tf.py_function(lambda t: t * 2.0, [x], tf.float32)}
    module = Writer()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    assert not marker.exists()
    inp = keras.Input((4,), name="x")
    keras.Model(inp, keras.layers.Dense(4)(inp)).save(tmp_path / "ref.keras")
    code, _, err = run_cli("verify", tmp_path / "sm", "--reference", tmp_path / "ref.keras")
    assert code == 3 and not marker.exists()
    words = "calls Python" if op == "EagerPyFunc" else "reads or writes files"
    assert err.startswith(f"mwconv: error: {tmp_path / 'sm'}: its graph runs the op {op} (node ")
    assert err.strip().endswith(f"{words}: refused, since mwconv never runs code from a file")
