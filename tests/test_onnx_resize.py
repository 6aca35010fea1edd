"""ONNX ``Resize`` and ``Upsample`` against onnxruntime, built with onnx.helper: nearest with
each ``nearest_mode``, linear and cubic (``cubic_coeff_a``, ``exclude_outside``), every
``coordinate_transformation_mode`` mwconv reads, scales up and down and sizes, opsets 9 to
18. One graph holds many Resize nodes side by side, so one import checks them all; each
output is compared on its own, named. PyTorch's own exports (``F.interpolate``) are checked
in test_onnx_torch.py where torch installs."""

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mwconv.layers.onnx_resize import axis_weights
from tests.test_onnx_graph import vi

RNG = np.random.default_rng(11)
X = (RNG.standard_normal((2, 3, 5, 6)) * 3).astype(np.float32)
COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
          "tf_half_pixel_for_nn"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
# an output coordinate that is a whole number in exact arithmetic and in mwconv's float32
# (5 -> 3 at scale 0.6: 2.0), where onnxruntime's half_pixel_symmetric lands just below it and
# floor picks the pixel before: the one case of the sweep where the two differ (README: Limits)
TIES = {("floor", "half_pixel_symmetric", "down")}
TARGETS = {"up2": ("scales", [1, 1, 2.0, 2.0]), "up1.5": ("scales", [1, 1, 1.5, 1.7]),
           "down": ("scales", [1, 1, 0.6, 0.5]), "sizes": ("sizes", [2, 3, 8, 4]), "one": ("sizes", [2, 3, 1, 9])}


def _model(cases, opset=18):
    """One graph, one Resize per case: (name, target key, attributes)."""
    nodes, inits, outputs = [], [], []
    for i, (name, key, attrs) in enumerate(cases):
        kind, values = TARGETS[key]
        arr = np.asarray(values, np.float32 if kind == "scales" else np.int64)
        inits.append(onnx.numpy_helper.from_array(arr, f"{kind}_{i}"))
        inputs = ["x", "", f"{kind}_{i}"] if kind == "scales" else ["x", "", "", f"{kind}_{i}"]
        nodes.append(helper.make_node("Resize", inputs, [f"y{i}"], name=f"resize_{i}", **attrs))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "resize", [vi("x", list(X.shape))], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _compare(tmp_path, model, cases, x=X, tol=1e-5):
    import onnxruntime as ort

    import mwconv
    from mwconv import modelio
    onnx.save(model, tmp_path / "m.onnx")
    want = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    mwconv.import_weights(tmp_path / "m.onnx", output=tmp_path / "m.keras")
    got = modelio.call_model(mwconv.load_model(tmp_path / "m.keras"), {"x": x})
    assert len(got) == len(want) == len(cases)
    wrong = []
    for (name, key, attrs), g, e in zip(cases, got, want):
        if g.shape != e.shape or not np.allclose(g, e, rtol=tol, atol=tol * max(1.0, float(np.abs(e).max()))):
            wrong.append(f"{name} {key}: shape {g.shape} vs {e.shape}, max abs "
                         f"{float(np.abs(g - e).max()) if g.shape == e.shape else '-'}")
    assert not wrong, "\n".join(wrong)


def test_nearest_every_mode_and_coordinate_transform(tmp_path):
    cases = [(f"nearest/{n}/{c}", t, {"mode": "nearest", "nearest_mode": n, "coordinate_transformation_mode": c})
             for n, c, t in itertools.product(NEAREST, COORDS, ["up1.5", "down", "sizes"])
             if not (c == "tf_half_pixel_for_nn" and t == "down") and (n, c, t) not in TIES]
    _compare(tmp_path, _model(cases), cases, tol=0)       # nearest copies values: exactly equal


def test_linear_every_coordinate_transform(tmp_path):
    cases = [(f"linear/{c}", t, {"mode": "linear", "coordinate_transformation_mode": c})
             for c, t in itertools.product([c for c in COORDS if c != "tf_half_pixel_for_nn"], TARGETS)]
    _compare(tmp_path, _model(cases), cases)


def test_cubic_coefficient_and_exclude_outside(tmp_path):
    cases = [(f"cubic/{c}/a{a}/ex{ex}", t, {"mode": "cubic", "coordinate_transformation_mode": c,
                                           "cubic_coeff_a": a, "exclude_outside": ex})
             for c, a, ex, t in itertools.product(["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"],
                                                  [-0.75, -0.5], [0, 1], ["up2", "down", "sizes"])]
    _compare(tmp_path, _model(cases), cases, tol=1e-4)


@pytest.mark.parametrize("opset,mode", [(9, "nearest"), (9, "linear"), (10, "nearest"), (10, "linear")])
def test_upsample_and_resize_10_read_their_scales_input(opset, mode, tmp_path):
    op = "Upsample" if opset == 9 else "Resize"
    scales = onnx.numpy_helper.from_array(np.asarray([1, 1, 2.0, 3.0], np.float32), "scales")
    node = helper.make_node(op, ["x", "scales"], ["y"], name="up", mode=mode)
    graph = helper.make_graph([node], "up", [vi("x", list(X.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [scales])
    cases = [(f"{op}-{opset}/{mode}", "up2", {})]
    _compare(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), cases)


def test_nearest_keeps_infinities_and_the_weights_sum_to_one():
    indices, matrix = axis_weights(5, 9, 1.8, "nearest")
    assert matrix is None and indices.dtype == np.int32 and indices.min() >= 0 and indices.max() <= 4
    for mode in ("linear", "cubic"):
        _, matrix = axis_weights(5, 9, 1.8, mode)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)


def test_a_resize_of_the_channel_axis_is_refused_with_the_reason(tmp_path):
    cases = [("channels", "up2", {"mode": "nearest"})]
    model = _model(cases)
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.asarray([1, 2, 1, 1], np.float32),
                                                                     "scales_0"))
    onnx.save(model, tmp_path / "m.onnx")
    from tests.helpers import run_cli
    code, _, err = run_cli("import", tmp_path / "m.onnx", "-o", tmp_path / "m.keras")
    assert code == 3 and "Resize" in err and "resizing the batch or channel axis" in err
    assert not (tmp_path / "m.keras").exists()
