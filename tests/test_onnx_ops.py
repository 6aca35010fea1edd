"""ONNX operators added with the op registry, built with onnx.helper (so CI covers
each one without torch): normalizations, GELU's Erf, Clip, hard activations,
shape arithmetic that folds to constants, indexing, and the batch-axis rules."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mwconv.convert.onnx import registry
from tests.helpers import listing, run_cli
from tests.test_onnx_graph import graph_model, run_both, single, vi, w

RNG = np.random.default_rng(3)
X3 = RNG.standard_normal((2, 5, 6)).astype(np.float32)
X4 = RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)
I64 = TensorProto.INT64


def c(name, value):
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(value), name))


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_normalization(axis, tmp_path):
    shape = X3.shape[axis:] if axis != -1 else X3.shape[-1:]
    model = single("LayerNormalization", ["N", 5, 6], ["N", 5, 6], {"s": w(*shape), "b": w(*shape)},
                   extra_inputs=("s", "b"), axis=axis, epsilon=1e-6)
    reloaded = run_both(tmp_path, model, {"x": X3})
    layer = next(layer for layer in reloaded.layers if "LayerNormalization" in type(layer).__name__)
    assert type(layer).__module__.startswith("mwconv") and layer.frozen == ["beta", "gamma"]


def test_instance_normalization(tmp_path):
    model = single("InstanceNormalization", ["N", 3, 9, 7], ["N", 3, 9, 7], {"s": w(3), "b": w(3)},
                   extra_inputs=("s", "b"), epsilon=1e-5)
    run_both(tmp_path, model, {"x": X4})


@pytest.mark.parametrize("op,attrs", [("Erf", {}), ("Neg", {}), ("Sqrt", {}), ("Abs", {}), ("HardSwish", {}),
                                      ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("Exp", {})])
def test_elementwise_functions(op, attrs, tmp_path):
    x = np.abs(X3) if op == "Sqrt" else X3 if op == "Exp" else X3 * 4
    run_both(tmp_path, single(op, ["N", 5, 6], ["N", 5, 6], **attrs), {"x": x})


@pytest.mark.parametrize("low,high", [(0.0, 6.0), (-1.0, None), (None, 0.5)])
def test_clip(low, high, tmp_path):
    inits, extra = {}, ["", ""]
    if low is not None:
        inits["lo"], extra[0] = np.float32(low), "lo"
    if high is not None:
        inits["hi"], extra[1] = np.float32(high), "hi"
    while extra and not extra[-1]:
        extra.pop()
    run_both(tmp_path, single("Clip", ["N", 5, 6], ["N", 5, 6], inits, extra_inputs=extra), {"x": X3 * 4})


def test_gelu_as_pytorch_exports_it(tmp_path):
    nodes = [c("sqrt2", np.float32(1.4142135)), c("one", np.float32(1.0)), c("half", np.float32(0.5)),
             helper.make_node("Div", ["x", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    run_both(tmp_path, graph_model(nodes, [vi("x", ["N", 5, 6])], [vi("y", ["N", 5, 6])]), {"x": X3})


def test_shape_arithmetic_folds_and_the_batch_stays_free(tmp_path):
    """view(b, 2, -1) with b read from Shape at run time (a dynamic-batch export)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), c("zero", np.int64(0)),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0), c("axes", np.array([0], np.int64)),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]), c("rest", np.array([2, -1], np.int64)),
             helper.make_node("Concat", ["b1", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["y"], axes=[2], keepdims=0)]
    model = graph_model(nodes, [vi("x", ["N", 4, 6])], [vi("y", ["N", 2])], opset=17)
    reloaded = run_both(tmp_path, model, {"x": RNG.standard_normal((3, 4, 6)).astype(np.float32)})
    assert reloaded.inputs[0].shape[0] is None
    import keras
    got = np.asarray(keras.saving.load_model(tmp_path / "m.keras")(np.ones((5, 4, 6), np.float32)))
    assert got.shape == (5, 2)                          # another batch size runs too


def test_constant_of_shape_where_expand_fold(tmp_path):
    """The class-token path of a ViT export: ConstantOfShape, Equal, Where, Expand on constants."""
    token = w(1, 1, 6)
    nodes = [c("shape", np.array([3], np.int64)),
             helper.make_node("ConstantOfShape", ["shape"], ["ones"], value=helper.make_tensor("v", I64, [1], [1])),
             c("minus", np.array([-1, -1, -1], np.int64)), helper.make_node("Mul", ["ones", "minus"], ["neg"]),
             c("want", np.array([2, -1, -1], np.int64)), helper.make_node("Equal", ["want", "neg"], ["eq"]),
             helper.make_node("Where", ["eq", "ones", "want"], ["target"]),
             helper.make_node("Expand", ["token", "target"], ["tokens"]),
             helper.make_node("Concat", ["tokens", "x"], ["y"], axis=1)]
    model = graph_model(nodes, [vi("x", [2, 5, 6])], [vi("y", [2, 6, 6])], {"token": token})
    reloaded = run_both(tmp_path, model, {"x": X3})
    assert reloaded.inputs[0].shape[0] == 2             # the graph combines a constant with its batch: kept fixed


@pytest.mark.parametrize("nodes_fn,out_shape", [
    (lambda: [c("st", np.array([1], np.int64)), c("en", np.array([4], np.int64)), c("ax", np.array([2], np.int64)),
              helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])], ["N", 5, 3]),
    (lambda: [c("i", np.int64(0)), helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], ["N", 6]),
    (lambda: [c("sp", np.array([2, 4], np.int64)), helper.make_node("Split", ["x", "sp"], ["a", "y"], axis=2)],
     ["N", 5, 4]),
    (lambda: [c("ax", np.array([1], np.int64)), helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
              helper.make_node("Squeeze", ["u", "ax"], ["y"])], ["N", 5, 6]),
    (lambda: [helper.make_node("Cast", ["x"], ["i"], to=I64), helper.make_node("Cast", ["i"], ["y"], to=1)],
     ["N", 5, 6]),
    (lambda: [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
              helper.make_node("MatMul", ["x", "t"], ["y"])], ["N", 5, 5]),
    (lambda: [c("r", np.array([1, 2, 1], np.int64)), helper.make_node("Tile", ["x", "r"], ["y"])], ["N", 10, 6]),
    (lambda: [helper.make_node("Sum", ["x", "x", "x"], ["y"])], ["N", 5, 6]),
    (lambda: [c("z", np.float32(0)), helper.make_node("Greater", ["x", "z"], ["m"]),
              helper.make_node("Where", ["m", "x", "z"], ["y"])], ["N", 5, 6]),
])
def test_indexing_and_shape_ops(nodes_fn, out_shape, tmp_path):
    model = graph_model(nodes_fn(), [vi("x", ["N", 5, 6])], [vi("y", out_shape)])
    reloaded = run_both(tmp_path, model, {"x": X3})
    assert reloaded.inputs[0].shape[0] is None


def test_strided_dilated_conv_and_ceil_mode_pool(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["h"], strides=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["h"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)]
    model = graph_model(nodes, [vi("x", ["N", 3, 9, 7])], [vi("y", None)], {"W": w(4, 3, 3, 3), "B": w(4)})
    run_both(tmp_path, model, {"x": X4})


@pytest.mark.parametrize("attrs", [{"kernel_shape": [3, 2], "dilations": [2, 2], "strides": [1, 2]},
                                   {"kernel_shape": [2, 2], "dilations": [2, 1], "pads": [1, 0, 1, 1], "ceil_mode": 1,
                                    "strides": [2, 2]}])
def test_dilated_max_pool(attrs, tmp_path):
    run_both(tmp_path, single("MaxPool", ["N", 3, 9, 7], None, **attrs), {"x": X4})


def test_fixed_batch_graph_that_moves_its_batch_axis(tmp_path):
    """A Transpose of the batch axis (as attention exports do) keeps the ONNX model's batch size."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
             c("shape", np.array([5, 12], np.int64)), helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "W"], ["y"])]
    model = graph_model(nodes, [vi("x", [2, 5, 6])], [vi("y", [5, 3])], {"W": w(12, 3)})
    reloaded = run_both(tmp_path, model, {"x": X3})
    assert tuple(reloaded.inputs[0].shape) == (2, 5, 6)


def test_dynamic_batch_graph_that_needs_a_fixed_batch_is_refused(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("v", 1, [1], [1.0]))]
    onnx.save(graph_model(nodes, [vi("x", ["N", 5, 6])], [vi("y", ["N", 5, 6])]), tmp_path / "d.onnx")
    code, _, err = run_cli("import", tmp_path / "d.onnx", "-o", tmp_path / "d.keras")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "ConstantOfShape" in err and "batch size" in err
    assert listing(tmp_path) == ["d.onnx"]


def test_every_unsupported_node_is_reported_before_anything_fails(tmp_path):
    """An unsupported node's consumers are not misreported as reading a tensor nobody produces."""
    nodes = [helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                              name="pool"),
             helper.make_node("Relu", ["p"], ["r"], name="after"),
             helper.make_node("LpNormalization", ["r"], ["y"], name="lp")]
    onnx.save(graph_model(nodes, [vi("x", ["N", 3, 9, 7])], [vi("y", None)]), tmp_path / "s.onnx")
    code, _, err = run_cli("import", tmp_path / "s.onnx", "-o", tmp_path / "s.keras")
    assert code == 3 and "unsupported operators: LpNormalization (lp)" in err and "malformed" not in err


def test_registry_declares_each_op_once_by_family():
    families = registry.by_family()
    assert set(families) == set(registry.FAMILIES)
    ops = [op for names in families.values() for op in names]
    assert len(ops) == len(set(ops)) == len(registry.supported_ops())
    for op in ("Constant", "Shape"):                 # folded, never converted
        assert op not in ops
    assert {"LayerNormalization", "Erf", "Clip", "HardSwish", "Slice", "Gather"} <= set(ops)
    assert registry.handler("LayerNormalization").since == 17


def test_readme_lists_the_registry():
    import os
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md"),
                  encoding="utf8").read()
    block = readme.split("<!-- onnx-ops:begin")[1].split("<!-- onnx-ops:end -->")[0]
    block = block.split("-->\n", 1)[1]
    assert block == registry.markdown_table(), "update the README's operator table:\n" + registry.markdown_table()


def test_a_folded_size_bomb_is_refused(tmp_path):
    nodes = [c("shape", np.array([100000, 100000, 100], np.int64)),
             helper.make_node("ConstantOfShape", ["shape"], ["big"], name="bomb"),
             helper.make_node("Add", ["x", "big"], ["y"])]
    onnx.save(graph_model(nodes, [vi("x", [1, 4])], [vi("y", None)]), tmp_path / "b.onnx")
    code, _, err = run_cli("import", tmp_path / "b.onnx", "-o", tmp_path / "b.keras")
    assert code == 3 and "ConstantOfShape (bomb: its constant output would have 1000000000000 elements" in err
    assert listing(tmp_path) == ["b.onnx"]
