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
