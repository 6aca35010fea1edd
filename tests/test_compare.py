"""``mwconv compare`` and ``verify --localize``: the first diverging layer of a broken import
is exactly the one broken, a clean import reports none, the JSON follows its schema, the
HTML report renders its figure in a real browser, and the tolerances are grounded in the
model's own noise floor.

Sources are real: PyTorch's exports of a ConvNeXt block stack and a SqueezeNet
(tests/data/torch_onnx/, as test_onnx_torch.py reads them) and a tf-keras MobileNetV2
written by tf-keras. Each import is broken in the test by editing the Keras model after
import: a kernel transposed, an epsilon changed, an activation swapped.
"""

import json
import os
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest

from tests.helpers import run_cli, run_json
from tests.tfkeras_zoo import write as write_tf_keras

HERE = os.path.dirname(os.path.abspath(__file__))
ONNX = os.path.join(HERE, "data", "torch_onnx")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """{case: (source, imported .keras)}: two torch ONNX exports and a tf-keras MobileNetV2."""
    import mwconv
    folder = tmp_path_factory.mktemp("compare")
    out = {}
    for case in ("convnext", "squeezenet"):
        source = folder / f"{case}.onnx"
        shutil.copy(os.path.join(ONNX, f"{case}.onnx"), source)
        mwconv.import_weights(source, output=folder / f"{case}.keras")
        out[case] = (source, folder / f"{case}.keras")
    h5 = write_tf_keras("mobilenet_v2", folder)[0]
    mwconv.import_weights(h5, output=folder / "mobilenet_v2.keras")
    out["mobilenet_v2"] = (h5, folder / "mobilenet_v2.keras")
    return out


def _broken(path, out, layer, config=None, kernel=None):
    """A copy of the imported model with one layer's config entries changed or its kernel
    rewritten by ``kernel(array)``; weights, flags and every other layer as imported."""
    import keras

    import mwconv
    model = mwconv.load_model(path)
    if config:
        cfg = json.loads(model.to_json())
        entry = next(e for e in cfg["config"]["layers"] if e["config"]["name"] == layer)
        entry["config"].update(config)
        edited = keras.models.model_from_json(json.dumps(cfg))
        edited.set_weights(model.get_weights())
        model = edited
    if kernel:
        variable = model.get_layer(layer).weights[0]
        variable.assign(kernel(np.asarray(variable.value)))
    model.save(out)
    return out


def _spatial_transpose(k):
    return np.ascontiguousarray(np.swapaxes(k, 0, 1))


BROKEN = {
    # case, layer broken, how
    "onnx-kernel-transposed": ("convnext", "blocks_blocks_1_dwconv_Conv", {}, _spatial_transpose),
    "onnx-epsilon": ("convnext", "blocks_blocks_1_norm_LayerNormalization", {"epsilon": 0.05}, None),
    "onnx-activation": ("squeezenet", "features_features_3_Relu", {"kind": "Sigmoid"}, None),
    "tf-keras-kernel-transposed": ("mobilenet_v2", "block_3_depthwise", {}, _spatial_transpose),
    "tf-keras-epsilon": ("mobilenet_v2", "block_5_depthwise_BN", {"epsilon": 0.5}, None),
    "tf-keras-activation": ("mobilenet_v2", "block_2_expand_relu", {"negative_slope": 0.2}, None),
}


@pytest.mark.parametrize("case", ["convnext", "squeezenet", "mobilenet_v2"])
def test_a_clean_import_reports_no_divergence(case, imported):
    source, model = imported[case]
    code, doc, _ = run_json("compare", source, model)
    assert code == 0, doc["message"]
    assert doc["ok"] is True and doc["first_divergence"] is None and doc["diverging"] == 0
    assert doc["paired"] >= 10 and doc["paired"] == sum(r["status"] == "ok" for r in doc["rows"])
    assert doc["source_kind"] == ("tf-keras" if case == "mobilenet_v2" else "onnx")
    assert doc["message"].startswith("no divergence:")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_first_divergence_is_exactly_the_broken_layer(name, imported, tmp_path):
    case, layer, config, kernel = BROKEN[name]
    source, model = imported[case]
    broken = _broken(model, tmp_path / "broken.keras", layer, config, kernel)
    code, doc, _ = run_json("compare", source, broken)
    assert code == 1
    first = doc["first_divergence"]
    assert first["keras_layer"] == layer, doc["message"]
    assert first["status"] == "diverges"
    assert first["inputs_max_abs"] <= first["atol"] + first["rtol"] * first["scale"]     # its inputs agree
    assert first["max_abs"] > first["atol"] + first["rtol"] * first["scale"]             # its own output does not
    before = [r for r in doc["rows"] if r["index"] < first["index"]]
    assert before and all(r["status"] == "ok" for r in before)
    code, out, _ = run_cli("compare", source, broken)
    assert code == 1 and f"first divergence: layer '{layer}'" in out.splitlines()[-1]
    assert first["op"] in out.splitlines()[-1]


def _schema(name):
    with open(os.path.join(HERE, os.pardir, "docs", name), encoding="utf8") as f:
        return json.load(f)


def test_the_json_follows_the_documented_schema(imported, tmp_path):
    import jsonschema

    from mwconv.localize.result import ROW_FIELDS, SCHEMA
    source, model = imported["squeezenet"]
    _, doc, _ = run_json("compare", source, model, "--samples", "3", "--seed", "5")
    jsonschema.validate(doc, _schema("compare-report.schema.json"))
    assert doc["schema"] == SCHEMA == "mwconv-compare-report/1"
    assert set(doc) == {"schema", "ok", "source", "model", "source_kind", "probe", "tolerance", "paired", "diverging",
                        "first_divergence", "message", "notes", "rows"}
    assert doc["probe"] == {"samples": 3, "seed": 5, "inputs": None}
    assert doc["tolerance"] == {"kind": "source", "grounded": True, "atol": None, "rtol": None, "ulps": 4,
                                "multiple": 10, "max_factor": 100}
    assert [r["index"] for r in doc["rows"]] == list(range(len(doc["rows"])))
    for row in doc["rows"]:
        assert tuple(row) == ROW_FIELDS
        assert row["status"] in ("ok", "diverges", "inherits", "shape mismatch", "unpaired")
        assert isinstance(row["built"], list) and row["keras_layer"] in row["built"]
        assert row["shape"][0] == 3 and all(isinstance(v, float) for v in (row["max_abs"], row["noise_floor"]))
        assert 1.0 <= row["factor"] <= 100.0
    conv = doc["rows"][0]
    assert (conv["op"], conv["keras_layer"]) == ("Conv", "features_features_0_Conv")
    assert conv["built"] == ["features_features_0_Conv_to_nhwc", "features_features_0_Conv",
                             "features_features_0_Conv_to_nchw"]
    _, fixed, _ = run_json("compare", source, model, "--atol", "1e-3", "--rtol", "0")
    jsonschema.validate(fixed, _schema("compare-report.schema.json"))
    assert fixed["tolerance"]["grounded"] is False
    assert {(r["atol"], r["rtol"], r["factor"]) for r in fixed["rows"]} == {(1e-3, 0.0, 1.0)}


def test_compare_refuses_what_it_cannot_pair(imported, tmp_path):
    source, model = imported["squeezenet"]
    npz = tmp_path / "weights.npz"
    np.savez(npz, w=np.zeros(3, np.float32))
    code, _, err = run_cli("compare", npz, model)
    assert code == 2 and "npz source without architecture cannot run" in err and str(npz) in err
    code, _, err = run_cli("compare", source, tmp_path / "missing.keras")
    assert code == 3 and "no such file or directory" in err
    report = tmp_path / "r.html"
    report.write_text("mine")
    code, _, err = run_cli("compare", source, model, "--report-html", report)
    assert code == 4 and report.read_text() == "mine"


# -- the HTML report, in a real browser ------------------------------------------------------
def _chromium():
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG (a browser's screenshot)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.setdefault(kind, []).append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and color in (2, 6)
    channels = 4 if color == 6 else 3
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride, rows, prev = width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            line[x] = (line[x] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 0xFF
        rows.append(line)
        prev = line
    return width, height, channels, rows


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _count(pixels, color, tolerance=40):
    width, height, channels, rows = pixels
    want = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    return sum(1 for row in rows for x in range(0, width * channels, channels)
               if all(abs(row[x + i] - want[i]) <= tolerance for i in range(3)))


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (Debian's 'chromium' package) to render the report")
def test_the_html_report_renders_its_figure_in_a_browser(imported, tmp_path):
    from mwconv.localize import html
    case, layer, config, kernel = BROKEN["onnx-activation"]
    source, model = imported[case]
    broken = _broken(model, tmp_path / "broken.keras", layer, config, kernel)
    report = tmp_path / "report.html"
    code, _, err = run_cli("compare", source, broken, "--report-html", report)
    assert code == 1 and f"wrote {report}" in err
    text = report.read_text()
    assert "<svg" in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in text and "src=" not in text and "<link" not in text       # self-contained
    assert f"first divergence: layer &#x27;{layer}&#x27;" in text
    assert "features_features_0_Conv_to_nhwc, features_features_0_Conv, features_features_0_Conv_to_nchw" in text
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1000,800", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = _png_pixels(shot)
    assert pixels[0] == 1000 and pixels[1] == 800
    assert _count(pixels, html.ERROR_COLOR, 30) > 1500          # the error curve is drawn
    assert _count(pixels, html.DIVERGENCE_COLOR, 30) > 800      # and the divergence marked
    assert _count(pixels, html.TOLERANCE_COLOR, 30) > 300       # beside the tolerance line


# -- verify: the failure line points at compare; --localize runs it --------------------------
def test_a_failed_source_check_says_how_to_localize_and_localize_names_the_layer(imported, tmp_path):
    import jsonschema

    case, layer, config, kernel = BROKEN["onnx-epsilon"]
    source, model = imported[case]
    broken = _broken(model, tmp_path / "broken.keras", layer, config, kernel)
    code, doc, _ = run_json("verify", broken, "--reference", model, "--source", source, "--checks", "source")
    assert code == 1
    problems = doc["checks"][0]["problems"]
    assert f"mwconv compare {source} {broken} --report-html compare.html" in problems[-1]
    code, out, _ = run_cli("verify", broken, "--reference", model, "--source", source, "--checks", "source", "--localize")
    assert code == 1 and "localize (source check):" in out
    assert f"first divergence: layer '{layer}'" in out
    code, doc, _ = run_json("verify", broken, "--reference", model, "--source", source, "--checks", "source", "--localize")
    jsonschema.validate(doc, _schema("verify-report.schema.json"))
    jsonschema.validate(doc["localize"][0]["comparison"], _schema("compare-report.schema.json"))
    assert doc["localize"][0]["comparison"]["first_divergence"]["keras_layer"] == layer


def test_a_failed_outputs_check_localizes_keras_against_keras(imported, tmp_path):
    source, model = imported["convnext"]
    broken = _broken(model, tmp_path / "tampered.keras", "blocks_blocks_1_pw1_MatMul", kernel=lambda k: k * 1.01)
    code, doc, _ = run_json("verify", broken, "--reference", model, "--checks", "outputs", "--localize")
    assert code == 1 and doc["checks"][0]["status"] == "fail"            # a tampered weight still fails outputs
    assert f"mwconv compare {model} {broken}" in doc["checks"][0]["problems"][-1]
    comparison = doc["localize"][0]["comparison"]
    assert comparison["source_kind"] == "keras" and comparison["tolerance"]["kind"] == "exact"
    assert comparison["first_divergence"]["keras_layer"] == "blocks_blocks_1_pw1_MatMul"
    serving = tmp_path / "serving"
    assert run_cli("export", broken, "--format", "saved_model", "-o", serving, "--no-verify")[0] == 0
    code, doc, _ = run_json("verify", serving, "--reference", model, "--checks", "outputs", "--localize")
    assert code == 1 and doc["localize"][0]["comparison"] is None
    assert "intermediate tensors are not reachable" in doc["localize"][0]["reason"]
