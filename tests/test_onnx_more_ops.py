"""ONNX operators models ship beyond the CNN core, built with onnx.helper and checked against
onnxruntime: ReduceL1/L2/SumSquare/LogSum/LogSumExp (EdgeNeXt's XCA), CumSum (RoBERTa's
position ids), AveragePool with ``count_include_pad=0`` (PoolFormer) and ``ceil_mode``, and a
depthwise convolution with unequal strides (an OCR classifier's (2, 1))."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

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


def _branch(name, nodes, out, inits=None):
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                             [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])


@pytest.mark.parametrize("rank_test", [4, 3])
def test_if_whose_condition_folds_is_replaced_by_its_branch(rank_test, tmp_path):
    """``if x.dim() == 4`` as exporters write it: Equal(Size(Shape(x)), 4) folds, the taken
    branch (reading the outer graph's ``x`` and an initializer of its own) is inlined."""
    then = _branch("then", [helper.make_node("Mul", ["x", "scale"], ["t"]), helper.make_node("Relu", ["t"], ["y_then"])],
                   "y_then", {"scale": np.full((1, 3, 1, 1), 2.0, np.float32)})
    other = _branch("else", [helper.make_node("Neg", ["x"], ["y_else"])], "y_else")
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Size", ["s"], ["rank"]),
             helper.make_node("Constant", [], ["four"], value=numpy_helper.from_array(np.asarray(rank_test, np.int64))),
             helper.make_node("Equal", ["rank", "four"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], name="if_rank", then_branch=then, else_branch=other),
             helper.make_node("Add", ["y", "x"], ["z"])]
    model = graph_model(nodes, [vi("x", ["N", 3, 4, 4])], [vi("z", ["N", 3, 4, 4])])
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    reloaded = run_both(tmp_path, model, {"x": x})
    expected = np.maximum(2 * x, 0) + x if rank_test == 4 else np.zeros_like(x)
    np.testing.assert_allclose(np.asarray(reloaded(x)), expected, atol=1e-6)


def test_if_with_a_constant_branch_output(tmp_path):
    then = _branch("then", [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
        np.asarray([1.5], np.float32)))], "c")
    other = _branch("else", [helper.make_node("Constant", [], ["d"], value=numpy_helper.from_array(
        np.asarray([-1.0], np.float32)))], "d")
    nodes = [helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.asarray(True))),
             helper.make_node("If", ["cond"], ["c_out"], then_branch=then, else_branch=other),
             helper.make_node("Mul", ["x", "c_out"], ["y"])]
    model = graph_model(nodes, [vi("x", ["N", 5])], [vi("y", ["N", 5])])
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(run_both(tmp_path, model, {"x": x})(x)), 1.5 * x, rtol=1e-6)


def test_if_on_a_run_time_condition_is_refused_with_the_reason(tmp_path):
    from tests.helpers import run_cli
    then = _branch("then", [helper.make_node("Relu", ["x"], ["a"])], "a")
    other = _branch("else", [helper.make_node("Neg", ["x"], ["b"])], "b")
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.asarray(0.0, np.float32))),
             helper.make_node("Greater", ["total", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], name="sign_switch", then_branch=then, else_branch=other)]
    model = graph_model(nodes, [vi("x", ["N", 5])], [vi("y", ["N", 5])])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code, _, err = run_cli("import", path, "-o", tmp_path / "m.keras")
    assert code == 3
    assert "If (sign_switch: its condition is known only at run time" in err
    assert not (tmp_path / "m.keras").exists()
