"""`mwconv run` on the bundled example pipelines and on broken pipeline files."""

import json
import os
import shutil

import pytest

from mwconv.pipeline import load_pipeline
from tests.helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def sandbox(tmp_path):
    shutil.copytree(os.path.join(ROOT, "examples"), tmp_path / "examples")
    return tmp_path


def run_json_allow_fail(*args):
    code, out, err = run_cli("--json", *args)
    return code, json.loads(out), err


def test_quickstart_pipeline_end_to_end(sandbox):
    code, doc, _ = run_json_allow_fail("run", sandbox / "examples" / "quickstart.toml")
    assert code == 0 and doc["ok"] is True
    result = doc["pipelines"][0]
    assert [e["format"] for e in result["exports"]] == ["saved_model", "keras", "onnx"]
    assert sorted(w["target"] for w in result["import"]["weights"] if w["trainable"]) == ["head/bias", "head/kernel"]
    for report in result["verify"]:
        by_name = {c["name"]: c for c in report["checks"]}
        assert by_name["partition"]["status"] == "pass" and by_name["outputs"]["status"] == "pass"
        assert by_name["source"]["status"] == "pass"
        assert by_name["devices"]["status"] == "skipped" and by_name["devices"]["message"] == "no GPU visible"
        assert by_name["train-step"]["status"] == ("pass" if report["kind"] == "keras" else "skipped")
    assert (sandbox / "build" / "quickstart" / "serving" / "saved_model.pb").exists()


def test_impossible_tolerance_exits_1_and_names_check_and_output(sandbox):
    (sandbox / "examples" / "strict.toml").write_text(
        (sandbox / "examples" / "quickstart.toml").read_text().replace(
            'checks = ["partition", "outputs", "train-step", "devices", "source"]',
            'checks = ["partition", "outputs"]\natol = 0.0\nrtol = 0.0'))
    code, doc, err = run_json_allow_fail("run", sandbox / "examples" / "strict.toml")
    assert code == 1 and doc["ok"] is False
    onnx_report = next(r for r in doc["pipelines"][0]["verify"] if r["kind"] == "onnx")
    outputs = next(c for c in onnx_report["checks"] if c["name"] == "outputs")
    assert outputs["status"] == "fail" and outputs["problems"][0].startswith("output 'head': max abs error")
    assert "model.onnx: outputs" in doc["pipelines"][0]["error"] and "verification failed" in err


@pytest.mark.parametrize("edit,code,needles", [
    (lambda t: t.replace("opset = 17", "opset = 17\nfromat = 'x'"), 2,
     ["unknown key 'export[2].fromat' (line 29)", "known in [export]"]),
    (lambda t: t.replace('train = ["head/*"]', 'train = "head/*"'), 2,
     ["key 'import.train' (line 14) must be a list of str, got str"]),
    (lambda t: t.replace("seed = 0", "seed = 0.5"), 2, ["key 'fixtures.seed' (line 8) must be an integer"]),
    (lambda t: t + "\n[extras]\nx = 1\n", 2, ["unknown table [extras]"]),
    (lambda t: t.replace('[import]', '[import]\nmodel = "nowhere.py:build"'), 3, ["nowhere.py: no such file"]),
    (lambda t: t.replace('output = "../build/quickstart/model.keras"', ""), 2, ["[import] needs the key 'output'"]),
])
def test_broken_pipeline_files(edit, code, needles, sandbox):
    path = sandbox / "examples" / "broken.toml"
    path.write_text(edit((sandbox / "examples" / "quickstart.toml").read_text()))
    got, doc, err = run_json_allow_fail("run", path)
    assert got == code, err
    for needle in needles:
        assert needle in doc["pipelines"][0]["error"], doc["pipelines"][0]["error"]
        assert needle in err


def test_missing_source_file_exits_3(sandbox):
    path = sandbox / "examples" / "missing.toml"
    text = (sandbox / "examples" / "torch_state_dict.toml").read_text()
    path.write_text(text.replace("../samples/torch_state_dict.npz", "../samples/none.npz"))
    code, doc, err = run_json_allow_fail("run", path)
    assert code == 3 and "none.npz: no such file or directory" in err


def test_several_pipelines_exit_with_the_highest_code(sandbox):
    bad = sandbox / "examples" / "bad.toml"
    bad.write_text("[source]\npath = 'x'\n")
    code, doc, _ = run_json_allow_fail("run", sandbox / "examples" / "quickstart.toml", bad)
    assert code == 2 and [p["exit_code"] for p in doc["pipelines"]] == [0, 2]
    assert "needs a [import] table" in doc["pipelines"][1]["error"]


def test_relative_paths_resolve_against_the_pipeline_file(sandbox):
    doc = load_pipeline(sandbox / "examples" / "torch_state_dict.toml")
    assert doc["source"]["path"] == str(sandbox / "samples" / "torch_state_dict.npz")
    assert doc["import"]["model"] == f"{sandbox / 'examples' / 'torch_net.py'}:build"
    assert doc["import"]["map"] == str(sandbox / "examples" / "torch_rules.txt")


def test_every_import_option_is_settable_from_a_pipeline(samples, tmp_path):
    """The schema comes from ImportOptions: channels_last (once CLI-only) works in a file."""
    (tmp_path / "p.toml").write_text(f"""
[source]
path = "{samples / 'cnn_external.onnx'}"
[import]
channels_last = true
output = "nhwc.keras"
[[export]]
format = "safetensors"
output = "nhwc.safetensors"
""")
    code, doc, err = run_json_allow_fail("run", tmp_path / "p.toml")
    assert code == 0, err
    import mwconv
    model = mwconv.load_model(tmp_path / "nhwc.keras")
    assert tuple(model.inputs[0].shape)[1:] == (8, 8, 3)      # NHWC; the ONNX graph takes (N, 3, 8, 8)
    assert {c["name"]: c["status"] for c in doc["pipelines"][0]["verify"][0]["checks"]}["partition"] == "pass"


@pytest.mark.parametrize("edit, message", [
    ('[[export]]\nformat = "tiff"\noutput = "x.tiff"\n', "--format must be one of saved_model, keras, weights_h5, "
                                                         "onnx, safetensors. Received: 'tiff'"),
    ('[verify]\nsamples = 0\n', "--samples must be a positive integer. Received: 0"),
    ('[[export]]\nformat = "onnx"\noutput = "m.onnx"\nopset = 99\n', "--opset must be an ONNX opset from 7 to 30"),
])
def test_bad_options_stop_the_pipeline_before_anything_is_written(edit, message, samples, tmp_path):
    (tmp_path / "p.toml").write_text(f'[source]\npath = "{samples / "tfkeras2_full.h5"}"\n'
                                     f'[import]\noutput = "m.keras"\n{edit}')
    code, doc, _ = run_json_allow_fail("run", tmp_path / "p.toml")
    assert code == 2 and message in doc["pipelines"][0]["error"]
    assert sorted(os.listdir(tmp_path)) == ["p.toml"]
