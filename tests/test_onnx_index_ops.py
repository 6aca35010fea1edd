"""ONNX operators that contract or index by other tensors, built with onnx.helper and checked
against onnxruntime: Einsum (MaxViT's attention, a projection by a constant), TopK
(detection post-processing), GatherND and ScatterND (box selection, position ids); NonZero
is refused with its reason."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers import run_cli
from tests.test_onnx_graph import graph_model, run_both, vi, w

RNG = np.random.default_rng(11)
I64 = TensorProto.INT64


def _model(nodes, inputs, outputs, inits=None, opset=17):
    return graph_model(nodes, inputs, outputs, inits, opset)


@pytest.mark.parametrize("equation,shapes,out", [
    ("bhqd,bhkd->bhqk", [["N", 2, 5, 4], ["N", 2, 6, 4]], ["N", 2, 5, 6]),       # attention scores
    ("bhqk,bhkd->bhqd", [["N", 2, 5, 6], ["N", 2, 6, 4]], ["N", 2, 5, 4]),       # attention-weighted values
    ("bij->bji", [["N", 3, 4]], ["N", 4, 3]),
    ("...ij,...jk->...ik", [["N", 3, 4], ["N", 4, 2]], ["N", 3, 2]),
])
def test_einsum_of_graph_tensors(equation, shapes, out, tmp_path):
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node("Einsum", names, ["y"], name="einsum", equation=equation)
    model = _model([node], [vi(n, s) for n, s in zip(names, shapes)], [vi("y", out)], opset=12)
    feeds = {n: RNG.standard_normal([2, *s[1:]]).astype(np.float32) for n, s in zip(names, shapes)}
    run_both(tmp_path, model, feeds)


def test_einsum_with_a_constant_operand_is_a_frozen_weight(tmp_path):
    node = helper.make_node("Einsum", ["x", "W"], ["y"], name="proj", equation="bsc,cd->bsd")
    model = _model([node], [vi("x", ["N", 5, 4])], [vi("y", ["N", 5, 3])], {"W": w(4, 3)}, opset=12)
    reloaded = run_both(tmp_path, model, {"x": RNG.standard_normal((2, 5, 4)).astype(np.float32)})
    layer = next(layer for layer in reloaded.layers if type(layer).__name__ == "OnnxEinsum")
    assert [v.name for v in layer.weights] == ["constant_0"] and not layer.weights[0].trainable


@pytest.mark.parametrize("axis,largest", [(-1, 1), (1, 1), (-1, 0)])
def test_top_k_values_and_indices(axis, largest, tmp_path):
    k = onnx.numpy_helper.from_array(np.asarray([3], np.int64), "k")
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk", axis=axis, largest=largest)
    shape = ["N", 3, 6] if axis == 1 else ["N", 5, 3]
    graph = helper.make_graph([node], "g", [vi("x", ["N", 5, 6])], [vi("values", shape), vi("indices", shape, I64)],
                              [k])
    x = RNG.permutation(60).reshape(2, 5, 6).astype(np.float32)          # distinct: no ties to order
    run_both(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"x": x})


def test_gather_nd_with_batch_dims(tmp_path):
    idx = onnx.numpy_helper.from_array(np.array([[[0, 1], [2, 3]], [[1, 0], [3, 2]]], np.int64)[:1].repeat(2, 0), "idx")
    node = helper.make_node("GatherND", ["x", "idx"], ["y"], name="gather_nd", batch_dims=1)
    graph = helper.make_graph([node], "g", [vi("x", [2, 4, 5, 3])], [vi("y", [2, 2, 3])], [idx])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    run_both(tmp_path, model, {"x": RNG.standard_normal((2, 4, 5, 3)).astype(np.float32)})


def test_gather_nd_and_scatter_nd_into_a_fixed_batch(tmp_path):
    idx = np.array([[1, 2], [0, 0], [1, -1]], np.int64)
    updates = w(2, 4)
    nodes = [helper.make_node("GatherND", ["x", "idx"], ["picked"], name="gather_nd"),
             helper.make_node("ScatterND", ["x", "pos", "updates"], ["written"], name="scatter_nd")]
    model = _model(nodes, [vi("x", [2, 3, 4])], [vi("picked", [3, 4]), vi("written", [2, 3, 4])],
                   {"idx": idx, "pos": np.array([[0, 2], [1, 0]], np.int64), "updates": updates}, opset=16)
    run_both(tmp_path, model, {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)})


def test_non_zero_is_refused_with_its_reason(tmp_path):
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
             helper.make_node("Cast", ["nz"], ["y"], to=TensorProto.FLOAT)]
    model = _model(nodes, [vi("x", ["N", 4])], [vi("y", [2, None])])
    onnx.save(model, tmp_path / "nz.onnx")
    code, _, err = run_cli("import", tmp_path / "nz.onnx", "-o", tmp_path / "nz.keras")
    assert code == 3 and not (tmp_path / "nz.keras").exists()
    assert "NonZero" in err and "its output's size depends on the values" in err


@pytest.mark.parametrize("shape", [(4, 1), (1, 4), (4,), (2, 1, 1)])
def test_add_broadcasts_a_column_as_numpy_does(shape, tmp_path):
    """Keras's TensorFlow ``ops.add`` turns an ``(n, 1)`` operand beside a square ``(..., n, n)``
    one into a bias along the last axis (``tf.nn.bias_add``): the wrong axis. mwconv's Add
    (and Sub through it) broadcasts as ONNX and NumPy do."""
    c = w(*shape)
    out = [2, 4, 4] if len(shape) < 3 else [2, 4, 4]
    nodes = [helper.make_node("Add", ["x", "c"], ["s"], name="add"),
             helper.make_node("Add", ["c", "x"], ["t"], name="add_reversed"),
             helper.make_node("Mul", ["s", "t"], ["y"], name="mul")]
    model = _model(nodes, [vi("x", [2, 4, 4])], [vi("y", out)], {"c": c})
    run_both(tmp_path, model, {"x": RNG.standard_normal((2, 4, 4)).astype(np.float32)})
