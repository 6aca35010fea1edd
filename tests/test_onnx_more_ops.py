"""ONNX operators models ship beyond the CNN core, built with onnx.helper and checked against
onnxruntime: ReduceL1/L2/SumSquare/LogSum/LogSumExp (EdgeNeXt's XCA), CumSum (RoBERTa's
position ids), AveragePool with ``count_include_pad=0`` (PoolFormer) and ``ceil_mode``, and a
depthwise convolution with unequal strides (an OCR classifier's (2, 1))."""

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.test_onnx_graph import graph_model, run_both, single, vi, w

RNG = np.random.default_rng(5)
X4 = RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)
X3 = RNG.standard_normal((2, 5, 6)).astype(np.float32)


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions(op, keepdims, tmp_path):
    x = np.abs(X3) + 0.1 if op == "ReduceLogSum" else X3
    out = ["N", 5, 1] if keepdims else ["N", 5]
    run_both(tmp_path, single(op, ["N", 5, 6], out, axes=[2], keepdims=keepdims), {"x": x})


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum(exclusive, reverse, tmp_path):
    axis = onnx.numpy_helper.from_array(np.asarray(1, np.int64), "axis")
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], name="cumsum", exclusive=exclusive, reverse=reverse)
    graph = helper.make_graph([node], "g", [vi("x", ["N", 5, 6])], [vi("y", ["N", 5, 6])], [axis])
    run_both(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"x": X3})


def test_roberta_position_ids(tmp_path):
    """``cumsum(ids != pad) * (ids != pad) + pad``, as transformers' RoBERTa exports it."""
    from onnx import TensorProto
    pad = onnx.numpy_helper.from_array(np.asarray(1, np.int64), "pad")
    axis = onnx.numpy_helper.from_array(np.asarray(1, np.int64), "axis")
    nodes = [helper.make_node("Equal", ["ids", "pad"], ["is_pad"]), helper.make_node("Not", ["is_pad"], ["keep"]),
             helper.make_node("Cast", ["keep"], ["mask"], to=TensorProto.INT64),
             helper.make_node("CumSum", ["mask", "axis"], ["running"], name="positions"),
             helper.make_node("Mul", ["running", "mask"], ["masked"]), helper.make_node("Add", ["masked", "pad"], ["y"])]
    graph = helper.make_graph(nodes, "g", [vi("ids", ["N", 8], TensorProto.INT64)], [vi("y", ["N", 8], TensorProto.INT64)],
                              [pad, axis])
    ids = np.array([[0, 5, 7, 9, 2, 1, 1, 1], [0, 4, 2, 1, 1, 1, 1, 1]], np.int64)
    run_both(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"ids": ids})


@pytest.mark.parametrize("strides,ceil", [((1, 1), 0), ((2, 2), 0), ((2, 2), 1), ((2, 1), 1)])
def test_average_pool_without_padding_in_the_count(strides, ceil, tmp_path):
    out_h = {(1, 0): 9, (2, 0): 5, (2, 1): 5}[(strides[0], ceil)]
    out_w = {(1, 0): 7, (2, 0): 4, (2, 1): 4}.get((strides[1], ceil), 7)
    model = single("AveragePool", ["N", 3, 9, 7], ["N", 3, out_h, out_w], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                   strides=list(strides), count_include_pad=0, ceil_mode=ceil)
    run_both(tmp_path, model, {"x": X4})


def test_depthwise_convolution_with_unequal_strides(tmp_path):
    model = single("Conv", ["N", 3, 9, 7], ["N", 6, 5, 7], {"W": w(6, 1, 3, 3), "B": w(6)}, extra_inputs=("W", "B"),
                   group=3, strides=[2, 1], pads=[1, 1, 1, 1])
    reloaded = run_both(tmp_path, model, {"x": X4})
    assert any("Depthwise" in type(layer).__name__ for layer in reloaded.layers)


def test_a_mask_constant_holding_minus_infinity_is_not_a_weight(tmp_path):
    """An additive attention mask with -inf, exported as a constant: it imports without
    --allow-nonfinite (that flag stays for weights), and softmax gives onnxruntime's numbers."""
    from tests.helpers import run_cli
    mask = np.zeros((5, 6), np.float32)
    mask[np.triu_indices(5, 1)] = -np.inf
    nodes = [helper.make_node("Add", ["x", "mask"], ["masked"], name="add_mask"),
             helper.make_node("Softmax", ["masked"], ["y"], name="softmax", axis=-1)]
    model = graph_model(nodes, [vi("x", ["N", 5, 6])], [vi("y", ["N", 5, 6])], {"mask": mask})
    reloaded = run_both(tmp_path, model, {"x": X3})
    assert any(type(layer).__module__.startswith("mwconv.layers.onnx") and layer.weights for layer in reloaded.layers)
    # a weight holding NaN is still refused without the flag
    bad = w(6, 6)
    bad[2, 3] = np.nan
    gemm = single("Gemm", ["N", 6], ["N", 6], {"B": bad}, extra_inputs=("B",))
    onnx.save(gemm, tmp_path / "gemm.onnx")
    code, _, err = run_cli("import", tmp_path / "gemm.onnx", "-o", tmp_path / "gemm.keras")
    assert code == 3 and "tensor 'B'" in err and "--allow-nonfinite" in err


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_gather_elements_with_negative_indices(axis, tmp_path):
    from onnx import TensorProto
    idx = RNG.integers(-6 if axis != 1 else -5, 5, (2, 5, 6)).astype(np.int64)
    node = helper.make_node("GatherElements", ["x", "i"], ["y"], name="gather", axis=axis)
    graph = helper.make_graph([node], "g", [vi("x", [2, 5, 6]), vi("i", [2, 5, 6], TensorProto.INT64)],
                              [vi("y", [2, 5, 6])])
    run_both(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"x": X3, "i": idx})
