"""Hostile inputs and unlucky users: --force never destroys what mwconv did not write,
nothing is read through links leading out of a SavedModel, FIFOs and devices never
block, and no traceback reaches the user."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import listing, run_cli

MWCONV = os.path.join(os.path.dirname(sys.executable), "mwconv")


@pytest.fixture(scope="module")
def model(samples, tmp_path_factory):
    """A .keras file from mwconv import, shared by the tests."""
    path = tmp_path_factory.mktemp("hostile") / "model.keras"
    assert run_cli("import", samples / "tfkeras2_full.h5", "-o", path)[0] == 0
    return path


def test_force_never_deletes_the_folder_holding_the_input(model, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(model, project / "model.keras")
    (project / "notes.txt").write_text("mine")
    code, _, err = run_cli("export", project / "model.keras", "--format", "saved_model", "-o", project, "--force")
    assert code == 4
    assert err == (f"mwconv: error: {project}: is the input {project / 'model.keras'} or a folder holding it; choose "
                   "another output\n")
    assert listing(project) == ["model.keras", "notes.txt"]


def test_force_with_output_dot_is_refused(model, tmp_path, monkeypatch):
    shutil.copy(model, tmp_path / "model.keras")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("export", "model.keras", "--format", "saved_model", "-o", ".", "--force")
    assert code == 4 and "or a folder holding it" in err
    assert listing(tmp_path) == ["model.keras"]


def test_force_replaces_only_a_savedmodel_written_by_mwconv(model, samples, tmp_path):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "cat.jpg").write_bytes(b"\xff\xd8")
    code, _, err = run_cli("export", model, "--format", "saved_model", "-o", user, "--force")
    assert code == 4 and "exists and is not a SavedModel written by mwconv" in err
    assert listing(user) == ["cat.jpg"]
    keras_export = tmp_path / "keras_export"           # Keras's own model.export: not mwconv's to replace
    shutil.copytree(samples / "keras3_saved_model", keras_export)
    code, _, err = run_cli("export", model, "--format", "saved_model", "-o", keras_export, "--force")
    assert code == 4 and "not a SavedModel written by mwconv" in err
    assert (keras_export / "saved_model.pb").read_bytes() == (samples / "keras3_saved_model" / "saved_model.pb").read_bytes()
    assert run_cli("export", model, "--format", "saved_model", "-o", tmp_path / "serving")[0] == 0
    assert run_cli("export", model, "--format", "saved_model", "-o", tmp_path / "serving", "--force")[0] == 0


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("args, code, needle", [
    (["inspect", "{fifo}"], 3, "is not a regular file (a FIFO, device or socket): refused"),
    (["import", "{fifo}", "-o", "{tmp}/m.keras"], 3, "is not a regular file (a FIFO, device or socket): refused"),
    (["import", "{samples}/tfkeras2_full.h5", "--map", "{fifo}", "-o", "{tmp}/m.keras"], 2,
     "the rules file is not a regular file"),
    (["import", "{samples}/tfkeras2_full.h5", "--map", "/dev/zero", "-o", "{tmp}/m.keras"], 2,
     "the rules file is not a regular file"),
    (["run", "/dev/zero"], 3, "the pipeline file is not a regular file"),
    (["run", "{fifo}"], 3, "the pipeline file is not a regular file"),
])
def test_fifos_and_devices_never_block(args, code, needle, samples, tmp_path):
    fifo = _fifo(tmp_path / "pipe.h5")
    argv = [a.format(fifo=fifo, tmp=tmp_path, samples=samples) for a in args]
    proc = subprocess.run([MWCONV, *argv], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["pipe.h5"]


def test_huge_rules_file_is_refused(samples, tmp_path):
    (tmp_path / "rules.txt").write_bytes(b"# x\n" * (1 << 19))      # 2 MiB of comments
    code, _, err = run_cli("import", samples / "tfkeras2_full.h5", "--map", tmp_path / "rules.txt",
                           "-o", tmp_path / "m.keras")
    assert code == 2 and "the rules file holds 2097152 bytes; more than 1048576 is refused" in err


def test_binary_rules_file_is_a_usage_error(samples, tmp_path):
    (tmp_path / "rules.txt").write_bytes(b"conv\xff\xfe -> x\n")
    code, _, err = run_cli("import", samples / "tfkeras2_full.h5", "--map", tmp_path / "rules.txt",
                           "-o", tmp_path / "m.keras")
    assert code == 2 and "the rules file is not UTF-8 text (byte 4 is 0xff)" in err


@pytest.mark.parametrize("what", ["variables", "variables/variables.index"])
def test_savedmodel_links_leading_out_are_refused(what, model, tmp_path):
    serving = tmp_path / "serving"
    assert run_cli("export", model, "--format", "saved_model", "-o", serving, "--no-verify")[0] == 0
    outside = tmp_path / "outside"
    shutil.move(str(serving / what), str(outside))
    os.symlink(outside, serving / what)
    code, _, err = run_cli("import", serving, "--model", model, "-o", tmp_path / "m.keras")
    assert code == 3
    assert f"'{what}' is a link leading out of the SavedModel folder (to {outside}): refused" in err
    assert not (tmp_path / "m.keras").exists()


def test_a_dangling_link_is_named(tmp_path):
    os.symlink(tmp_path / "gone.h5", tmp_path / "link.h5")
    code, _, err = run_cli("inspect", tmp_path / "link.h5")
    assert code == 3 and "cannot read (No such file or directory; a dangling link?)" in err


def test_an_unexpected_exception_is_one_line_and_exit_1(samples, monkeypatch):
    """The last resort: a bug still gives one line, exit 1, and -v advice; -v adds the traceback."""
    import mwconv.inspect

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody planned for\nsecond line")

    monkeypatch.setattr(mwconv.inspect, "inspect_source", broken)
    code, out, err = run_cli("inspect", samples / "tfkeras2_full.h5")
    assert code == 1 and out == ""
    assert err == ("mwconv: error: unexpected RuntimeError: something nobody planned for (a bug in mwconv: run again "
                   "with -v for the traceback, and please report it)\n")
    code, _, err = run_cli("-v", "inspect", samples / "tfkeras2_full.h5")
    assert code == 1 and "Traceback" in err and "RuntimeError: something nobody planned for" in err


# -- damaged and hostile files: one typed line each, exit 3 (or 2 for options) ------------------
def _npy(path, shape):
    import struct
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % shape).encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16)


def _h5(path, edit, samples=None, base=None):
    import h5py
    if base:
        shutil.copy(samples / base, path)
    with h5py.File(path, "a") as f:
        edit(f)


def _onnx_matmul(path, tensor):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    onnx.save_model(helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x],
                                                        [y], [tensor])), path)


def _external(path, offset, length):
    import numpy as np
    from onnx import TensorProto, numpy_helper
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", offset), ("length", length)):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    (path.parent / "w.bin").write_bytes(np.ones(16, np.float32).tobytes())
    _onnx_matmul(path, w)


def _make(kind, path, samples):
    import h5py
    import numpy as np
    from onnx import numpy_helper
    if kind == "npy-huge":
        _npy(path, "1180591620717411303424,")
    elif kind == "npy-negative":
        _npy(path, "-5, 3,")
    elif kind == "h5-link-cycle":
        _h5(path, lambda f: (f.__setitem__("a", h5py.SoftLink("/b")), f.__setitem__("b", h5py.SoftLink("/a"))))
    elif kind == "h5-bad-config":
        _h5(path, lambda f: f.attrs.__setitem__("model_config", "{not json"), samples, "tfkeras2_full.h5")
    elif kind == "h5-bad-manifest":
        _h5(path, lambda f: f.attrs.__setitem__("mwconv_manifest", "{not json"), samples, "keras3.weights.h5")
    elif kind == "h5-missing-group":
        def ghost(f):
            names = [n if isinstance(n, bytes) else n.encode() for n in f.attrs["layer_names"]]
            f.attrs["layer_names"] = np.array(names + [b"ghost"], dtype="S")
        _h5(path, ghost, samples, "tfkeras2_weights.h5")
    elif kind == "onnx-raw-too-long":
        w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
        w.raw_data = w.raw_data + b"\0" * 8
        _onnx_matmul(path, w)
    elif kind in ("onnx-negative-offset", "onnx-text-offset", "onnx-huge-length"):
        offset, length = {"onnx-negative-offset": ("-8", "64"), "onnx-text-offset": ("abc", "64"),
                          "onnx-huge-length": ("0", str(2 ** 62))}[kind]
        _external(path, offset, length)
    elif kind == "onnx-bad-manifest":
        import onnx
        model = onnx.load(samples / "mlp_opset9.onnx")
        entry = model.metadata_props.add()
        entry.key, entry.value = "mwconv_manifest", "{bad"
        onnx.save_model(model, path)


HOSTILE = [
    ("npy-huge", "x.npy", "tensor 'x': declares the shape (1180591620717411303424,): 4722366482869645213696 bytes, "
                          "more than any file holds (corrupt or a size bomb)"),
    ("npy-negative", "x.npy", "tensor 'x': declares the shape (-5, 3), with a negative dimension (corrupt)"),
    ("h5-link-cycle", "x.h5", "soft link to '/b' that leaves the file, dangles or loops: refused"),
    ("h5-bad-config", "x.h5", "the model_config attribute is not valid JSON"),
    ("h5-bad-manifest", "x.weights.h5", "the mwconv_manifest attribute is not valid JSON"),
    ("h5-missing-group", "x.h5", "tensor 'ghost': layer_names lists 'ghost', which the file holds no group for"),
    ("onnx-raw-too-long", "x.onnx", "tensor 'w': its raw_data holds 72 bytes but its dims (4, 4) need 64 (corrupt)"),
    ("onnx-negative-offset", "x.onnx", "tensor 'w': external data offset -8 / length 64 is negative (corrupt)"),
    ("onnx-text-offset", "x.onnx", "tensor 'w': external data offset/length are not integers"),
    ("onnx-huge-length", "x.onnx", "tensor 'w': external data length 4611686018427387904 differs from the 64 bytes"),
    ("onnx-bad-manifest", "x.onnx", "the mwconv_manifest metadata entry is not valid JSON"),
]


@pytest.mark.parametrize("kind, name, needle", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_damaged_files_are_refused_in_one_typed_line(kind, name, needle, samples, tmp_path):
    path = tmp_path / name
    _make(kind, path, samples)
    before = sorted(os.listdir(tmp_path))
    for args in (["inspect", "--hash", path], ["import", path, "--model", samples / "keras3_model.keras",
                                               "-o", tmp_path / "out.keras"]):
        code, out, err = run_cli(*args)
        assert code == 3, err
        assert err.startswith(f"mwconv: error: {path}: ") and needle in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_an_onnx_graph_with_a_cycle_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["t2"], ["t1"], name="a"), helper.make_node("Relu", ["t1"], ["t2"], name="b"),
             helper.make_node("Add", ["x", "t2"], ["y"], name="c")]
    onnx.save_model(helper.make_model(helper.make_graph(nodes, "cyclic", [x], [y])), tmp_path / "cyc.onnx")
    code, _, err = run_cli("import", tmp_path / "cyc.onnx", "-o", tmp_path / "m.keras")
    assert code == 3
    assert ("node 'a' (Relu) reads 't2', which no earlier node, graph input or initializer produces: the graph has "
            "a cycle or a dangling edge") in err
    assert not (tmp_path / "m.keras").exists()


def test_rules_using_a_group_the_regex_lacks(samples, tmp_path):
    (tmp_path / "rules.txt").write_text("fc(\\d+)\\.weight -> dense_\\3/kernel\n")
    code, _, err = run_cli("import", samples / "tfkeras2_full.h5", "--map", tmp_path / "rules.txt",
                           "-o", tmp_path / "m.keras")
    assert code == 2 and "line 1: the target uses group \\3 but the regex has 1 groups" in err


@pytest.mark.parametrize("args, needle", [
    (["--samples", "-3"], "--samples must be a positive integer. Received: -3"),
    (["--atol", "-1"], "--atol must be a number >= 0. Received: -1.0"),
    (["--checks", "partition,speed"], "unknown check 'speed'"),
])
def test_verify_options_are_usage_errors(args, needle, model):
    code, _, err = run_cli("verify", model, *args)
    assert code == 2 and needle in err


def test_probe_inputs_of_the_wrong_shape(model, tmp_path):
    import numpy as np
    np.savez(tmp_path / "in.npz", image=np.zeros((2, 5, 5, 3), np.float32), ids=np.zeros((2, 6), np.int32))
    code, _, err = run_cli("verify", model, "--inputs", tmp_path / "in.npz")
    assert code == 2
    assert "its array for input 'image' has shape (2, 5, 5, 3); the model takes ('N', 8, 8, 3)" in err


# -- writing: full disks, long names, leftovers of killed runs ------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only; skipped with the reason elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}); run as root to test")
    yield mount
    # a writer that failed mid-file may still hold it open in this process: detach lazily then
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    import keras
    path = tmp_path_factory.mktemp("big") / "big.keras"
    inp = keras.Input((1024,), name="x")
    keras.Model(inp, keras.layers.Dense(1024, name="d")(inp)).save(path)     # 4 MiB of weights
    return path


@pytest.mark.parametrize("fmt, name", [("saved_model", "serving"), ("keras", "m.keras"), ("onnx", "m.onnx"),
                                       ("safetensors", "m.safetensors"), ("weights_h5", "m.weights.h5")])
def test_disk_full_is_exit_4_and_leaves_nothing(fmt, name, big_model, small_disk):
    code, _, err = run_cli("export", big_model, "--format", fmt, "-o", small_disk / name, "-q")
    assert code == 4
    assert err == (f"mwconv: error: {small_disk / name}: no space left on the device; nothing was written (free "
                   "some space or choose another output)\n")
    assert os.listdir(small_disk) == []


def test_a_long_file_name_is_fine(model, tmp_path):
    name = "m" * 240 + ".keras"                     # 246 bytes: valid on ext4, too long with a suffix added
    code, _, err = run_cli("export", model, "--format", "keras", "-o", tmp_path / name)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == [name]


def test_leftovers_of_a_killed_run_are_swept(model, tmp_path):
    from mwconv.outputs import _stage_prefix

    target = tmp_path / "serving"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"{_stage_prefix(str(target))}abc123.mwconv-tmp"
    stale.mkdir()
    (stale / ".pid").write_text(str(dead.pid))
    (stale / "serving").mkdir()
    (stale / "serving" / "half-written").write_bytes(b"\0" * 1024)
    live = tmp_path / f"{_stage_prefix(str(target))}def456.mwconv-tmp"     # a run still going: kept
    live.mkdir()
    (live / ".pid").write_text(str(os.getpid()))
    starting = tmp_path / f"{_stage_prefix(str(target))}ghi789.mwconv-tmp"  # no .pid yet, just made: kept
    starting.mkdir()
    orphan = tmp_path / f"{_stage_prefix(str(target))}jkl012.mwconv-tmp"    # no .pid, an hour old: swept
    orphan.mkdir()
    os.utime(orphan, (os.path.getmtime(orphan) - 3600,) * 2)
    # killed before it wrote anything: just made, no .pid, but its name says whose it was
    early = tmp_path / f"{_stage_prefix(str(target))}{dead.pid}.a1b2c3d4.mwconv-tmp"
    early.mkdir()
    mine = tmp_path / f"{_stage_prefix(str(target))}{os.getpid()}.e5f6g7h8.mwconv-tmp"   # a live run's: kept
    mine.mkdir()
    code, _, err = run_cli("export", model, "--format", "saved_model", "-o", target, "--no-verify")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == sorted(["serving", live.name, starting.name, mine.name])


# -- names in messages: escaped, long lists shortened ---------------------------------------------
def test_names_with_control_characters_are_escaped(samples, tmp_path):
    import numpy as np
    evil = "w\nmwconv: all checks passed\x1b[2J"
    np.savez(tmp_path / "evil.npz", **{evil: np.ones(3, np.float32)})
    code, out, _ = run_cli("inspect", tmp_path / "evil.npz")
    assert code == 0 and "\x1b" not in out and "mwconv: all checks passed" not in out.splitlines()[1:]
    assert "w\\x0amwconv: all checks passed\\x1b[2J" in out
    code, _, err = run_cli("import", tmp_path / "evil.npz", "--model", samples / "keras3_model.keras",
                           "-o", tmp_path / "m.keras")
    assert code == 3 and err.count("\n") == 1 and "\x1b" not in err and "w\\x0amwconv" in err


def test_long_lists_are_shortened(samples, tmp_path):
    import numpy as np
    np.savez(tmp_path / "many.npz", **{f"t{i}": np.zeros(1, np.float32) for i in range(5000)})
    code, _, err = run_cli("import", tmp_path / "many.npz", "--model", samples / "keras3_model.keras",
                           "-o", tmp_path / "m.keras")
    assert code == 3 and err.count("\n") == 1 and len(err) < 3000
    assert "5000 source tensors are unused: t0, t1, " in err and ", ... and 4,980 more" in err


HASH_MEMORY = """
import resource, sys
from mwconv.inspect import inspect_source
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = inspect_source(sys.argv[1], with_hash=True)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(report["tensors"][0]["sha256"], grown)
"""


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "compressed"])
def test_inspect_hash_streams_npz_members(compressed, tmp_path):
    """256 MiB member: the hash equals numpy's, and memory grows far less than the member."""
    import hashlib

    import numpy as np
    value = np.repeat(np.arange(1 << 16, dtype=np.float32), 1 << 10)       # 256 MiB, compresses ~100:1
    (np.savez_compressed if compressed else np.savez)(tmp_path / "big.npz", w=value)
    want = hashlib.sha256(value.tobytes()).hexdigest()
    del value
    proc = subprocess.run([sys.executable, "-c", HASH_MEMORY, str(tmp_path / "big.npz")], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    digest, grown = proc.stdout.split()
    assert digest == want
    assert int(grown) < 96 << 20, f"hashing grew memory by {int(grown) >> 20} MiB"


@pytest.mark.slow
def test_a_2000_node_chain_imports_and_exports(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    n = 2000
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], ["y" if i == n - 1 else f"t{i}"],
                              name=f"r{i}") for i in range(n)]
    onnx.save_model(helper.make_model(helper.make_graph(nodes, "chain", [x], [y])), tmp_path / "chain.onnx")
    for args in (["import", "chain.onnx", "-o", "chain.keras"], ["export", "chain.keras", "--format", "saved_model",
                                                                 "-o", "serving", "-q"]):
        proc = subprocess.run([MWCONV, *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "serving" / "saved_model.pb").is_file()


def test_nonfinite_weights_are_named_by_verify(tmp_path):
    import keras
    import numpy as np
    inp = keras.Input((3,), name="x")
    keras.Model(inp, keras.layers.Dense(2, name="d")(inp)).save(tmp_path / "target.keras")
    kernel = np.ones((3, 2), np.float32)
    kernel[0, 0] = np.nan
    np.savez(tmp_path / "w.npz", **{"d/kernel": kernel, "d/bias": np.zeros(2, np.float32)})
    args = ["import", tmp_path / "w.npz", "--model", tmp_path / "target.keras", "--layout", "keras"]
    code, _, err = run_cli(*args, "-o", tmp_path / "m.keras")
    assert code == 3 and "NaN" in err                               # refused unless allowed
    assert run_cli(*args, "--allow-nonfinite", "-o", tmp_path / "m.keras")[0] == 0
    import json
    code, out, _ = run_cli("--json", "verify", tmp_path / "m.keras", "--reference", tmp_path / "m.keras",
                           "--checks", "partition,outputs")
    doc = json.loads(out)
    assert code == 0 and doc["warnings"] == [
        "1 weights hold NaN or Inf values (d/kernel): the outputs check counts NaN as equal to NaN; check that "
        "this is intended (--allow-nonfinite)"]
    assert doc["checks"][0]["details"]["nonfinite"] == ["d/kernel"]


def test_comparing_nan_and_inf():
    import numpy as np

    from mwconv.verification.compare import compare_arrays
    nan, inf = np.nan, np.inf
    assert compare_arrays([nan, 1, inf, -inf], [nan, 1, inf, -inf], 1e-6, 1e-5) == (True, 0.0, 0.0)
    assert compare_arrays([nan, 1.0], [1.0, 1.0], 1e-6, 1e-5)[0] is False
    assert compare_arrays([-inf], [inf], 1e-6, 1e-5) == (False, inf, inf)
    assert compare_arrays([1.0], [inf], 1e-6, 1e-5) == (False, inf, inf)
    assert compare_arrays([1.0 + 1e-7, 2.0], [1.0, 2.0], 1e-6, 1e-5)[0] is True


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_savedmodel_variables_are_refused(damage, model, tmp_path):
    """TensorFlow's checkpoint carries checksums: a flipped byte or a cut file is refused, never imported."""
    serving = tmp_path / "serving"
    assert run_cli("export", model, "--format", "saved_model", "-o", serving, "--no-verify", "-q")[0] == 0
    data = serving / "variables" / "variables.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    data.write_bytes(bytes(raw))
    code, _, err = run_cli("import", serving, "--model", model, "-o", tmp_path / "m.keras")
    assert code == 3 and err.count("\n") == 1 and "unexpected" not in err
    assert ("Checksum does not match" if damage == "flip" else "Read less bytes than requested") in err
    assert not (tmp_path / "m.keras").exists()
