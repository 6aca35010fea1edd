"""ONNX graphs exported with dynamic axes beyond the batch (a sequence, an image width): the
shape arithmetic after ``Shape`` runs as ``OnnxRuntimeOp`` layers, so one import serves every
size. Hugging Face BERT, RoBERTa, ALBERT, DistilBERT and GPT-2 with dynamic batch and sequence
(tests/data/make_hf_onnx.py), an OCR-style recognizer with a dynamic width
(tests/torch_blocks.py, tests/data/make_torch_onnx.py), and graphs built with onnx.helper, each
checked against onnxruntime at several sizes."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.helpers import run_cli, run_json
from tests.test_onnx_graph import graph_model, vi, w

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
I64 = TensorProto.INT64
SIZES = [(1, 5), (3, 12), (2, 20)]


def _session(path):
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _close(got, want, rel=1e-5):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.abs(got - want).max() <= rel * max(1.0, float(np.abs(want).max())), np.abs(got - want).max()


def _runtime_layers(model):
    return [layer for layer in model.layers if type(layer).__name__ == "OnnxRuntimeOp"]


@pytest.mark.parametrize("name", ["bert", "roberta", "albert", "distilbert", "gpt2"])
def test_a_hugging_face_export_with_a_dynamic_sequence_runs_at_every_length(name, tmp_path):
    import mwconv
    source = os.path.join(DATA, "hf_onnx", f"{name}_any_size.onnx")
    code, report, err = run_json("import", source, "-o", tmp_path / "m.keras")
    assert code == 0, err
    assert report["weights"] and not any(w["trainable"] for w in report["weights"])
    model = mwconv.load_model(tmp_path / "m.keras")
    assert tuple(model.inputs[0].shape) == (None, None)
    assert _runtime_layers(model)
    session = _session(source)
    for batch, length in SIZES:
        ids = np.random.default_rng(batch * length).integers(2, 100, (batch, length)).astype(np.int64)
        _close(np.asarray(model(ids)), session.run(None, {"input_ids": ids})[0])


@pytest.mark.slow
def test_a_dynamic_sequence_survives_export_to_saved_model_and_onnx(tmp_path):
    source = os.path.join(DATA, "hf_onnx", "bert_any_size.onnx")
    assert run_cli("import", source, "-o", tmp_path / "m.keras")[0] == 0
    for fmt, out in (("saved_model", tmp_path / "sm"), ("onnx", tmp_path / "m.onnx")):
        code, _, err = run_cli("export", tmp_path / "m.keras", "--format", fmt, "-o", out)
        assert code == 0, err
    ids = np.random.default_rng(3).integers(2, 100, (2, 17)).astype(np.int64)
    want = _session(source).run(None, {"input_ids": ids})[0]
    exported = _session(tmp_path / "m.onnx")
    _close(exported.run(None, {exported.get_inputs()[0].name: ids})[0], want)
    import tensorflow as tf
    serving = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    _close(np.asarray(list(serving(tf.constant(ids)).values())[0]), want)


def test_a_recognizer_with_a_dynamic_width_runs_at_every_width(tmp_path):
    import mwconv
    source = os.path.join(DATA, "torch_onnx", "crnn_any_size.onnx")
    code, _, err = run_cli("import", source, "-o", tmp_path / "m.keras")
    assert code == 0, err
    model = mwconv.load_model(tmp_path / "m.keras")
    assert tuple(model.inputs[0].shape) == (None, 1, 16, None)
    session = _session(source)
    for batch, width in ((1, 40), (3, 24), (2, 101)):
        x = np.random.default_rng(width).standard_normal((batch, 1, 16, width)).astype(np.float32)
        want = session.run(None, {"input": x})[0]
        assert want.shape == (batch, width // 2, 11)
        _close(np.asarray(model(x)), want)
    code, doc, err = run_json("verify", tmp_path / "m.keras", "--source", source)
    assert code == 0, err
    assert {c["name"]: c["status"] for c in doc["checks"]}["source"] == "pass"


def _import(tmp_path, model):
    import mwconv
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code, _, err = run_cli("import", path, "-o", tmp_path / "m.keras")
    assert code == 0, err
    return path, mwconv.load_model(tmp_path / "m.keras")


def _check(tmp_path, model, make_feeds, sizes=(5, 9)):
    path, keras_model = _import(tmp_path, model)
    session = _session(path)
    for size in sizes:
        feeds = make_feeds(size)
        want = session.run(None, feeds)
        got = keras_model(feeds[keras_model.inputs[0].name] if len(feeds) == 1 else feeds)
        for g, e in zip(got if isinstance(got, (list, tuple)) else [got], want):
            _close(np.asarray(g), e)
    return keras_model


def _c(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def test_attention_reshapes_to_a_target_computed_from_the_shape(tmp_path):
    """``[B, S, 2, 4]`` from Shape/Gather/Unsqueeze/Concat, a transpose, then ``[B, S, -1]``
    and a MatMul by a weight: its input size (8) stays static through the run-time reshapes."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             _c("i0", np.int64(0)), _c("i1", np.int64(1)), _c("ax", np.asarray([0], np.int64)),
             _c("heads", np.asarray([2, 4], np.int64)), _c("rest", np.asarray([-1], np.int64)),
             helper.make_node("Gather", ["s", "i0"], ["b"]), helper.make_node("Gather", ["s", "i1"], ["n"]),
             helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]), helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Concat", ["b1", "n1", "heads"], ["split"], axis=0),
             helper.make_node("Reshape", ["x", "split"], ["h"]),
             helper.make_node("Transpose", ["h"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["t"], ["u"], perm=[0, 2, 1, 3]),
             helper.make_node("Concat", ["b1", "n1", "rest"], ["merge"], axis=0),
             helper.make_node("Reshape", ["u", "merge"], ["m"]),
             helper.make_node("MatMul", ["m", "W"], ["y"])]
    model = graph_model(nodes, [vi("x", ["B", "S", 8])], [vi("y", ["B", "S", 3])], {"W": w(8, 3)})
    keras_model = _check(tmp_path, model, lambda s: {"x": np.random.default_rng(s).standard_normal((2, s, 8))
                                                     .astype(np.float32)})
    assert tuple(keras_model.outputs[0].shape) == (None, None, 3)
    assert len(_runtime_layers(keras_model)) >= 4


def test_positions_from_a_range_over_the_sequence_and_a_mask_of_its_shape(tmp_path):
    """GPT-2's ``Range(0, S)`` position ids into a position table, a BERT-style mask from
    ``ConstantOfShape(Shape(ids))``, and a position buffer sliced to the length (DistilBERT)."""
    table = w(32, 4)
    buffer = np.arange(32, dtype=np.int64)[None]
    nodes = [helper.make_node("Shape", ["ids"], ["s"]), _c("i1", np.int64(1)), _c("zero", np.int64(0)),
             _c("one", np.int64(1)), _c("ax", np.asarray([0], np.int64)), _c("start", np.asarray([0], np.int64)),
             helper.make_node("Gather", ["s", "i1"], ["n"]),
             helper.make_node("Range", ["zero", "n", "one"], ["pos"]),
             helper.make_node("Gather", ["table", "pos"], ["pe"]),
             helper.make_node("Gather", ["table", "ids"], ["te"]),
             helper.make_node("Add", ["te", "pe"], ["emb"]),
             helper.make_node("ConstantOfShape", ["s"], ["ones"],
                              value=numpy_helper.from_array(np.asarray([1.0], np.float32))),
             helper.make_node("Unsqueeze", ["ones", "minus"], ["mask"]),
             helper.make_node("Mul", ["emb", "mask"], ["y"]),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Slice", ["buffer", "start", "n1", "i1v"], ["sliced"]),
             helper.make_node("Add", ["ids", "sliced"], ["shifted"])]
    inits = {"table": table, "buffer": buffer, "minus": np.asarray([-1], np.int64), "i1v": np.asarray([1], np.int64)}
    model = graph_model(nodes, [vi("ids", ["B", "S"], I64)], [vi("y", ["B", "S", 4]), vi("shifted", ["B", "S"], I64)],
                        inits)
    _check(tmp_path, model, lambda s: {"ids": np.random.default_rng(s).integers(0, 16, (3, s)).astype(np.int64)})


def test_expand_and_tile_to_a_run_time_shape(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Expand", ["bias", "s"], ["e"]),
             helper.make_node("Add", ["x", "e"], ["y"]),
             _c("lead", np.asarray([0, 1], np.int64)),
             helper.make_node("Gather", ["s", "lead"], ["bs"]),
             helper.make_node("Concat", ["bs", "c1"], ["reps"], axis=0),
             helper.make_node("Tile", ["row", "reps"], ["z"])]
    inits = {"bias": w(1, 1, 6), "row": w(1, 1, 6), "c1": np.asarray([1], np.int64)}
    model = graph_model(nodes, [vi("x", ["B", "S", 6])], [vi("y", ["B", "S", 6]), vi("z", ["B", "S", 6])], inits)
    _check(tmp_path, model, lambda s: {"x": np.random.default_rng(s).standard_normal((2, s, 6)).astype(np.float32)})


def test_a_run_time_value_an_operator_cannot_take_is_refused_naming_it(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"]), _c("i1", np.int64(1)), _c("zero", np.int64(0)),
             _c("one", np.int64(1)), helper.make_node("Gather", ["s", "i1"], ["n"]),
             helper.make_node("Range", ["zero", "n", "one"], ["pos"]),
             helper.make_node("OneHot", ["pos", "depth", "values"], ["y"], name="onehot")]
    inits = {"depth": np.asarray([10], np.int64), "values": np.asarray([0.0, 1.0], np.float32)}
    model = graph_model(nodes, [vi("x", ["B", "S"])], [vi("y", ["S", 10])], inits)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code, _, err = run_cli("import", path, "-o", tmp_path / "m.keras")
    assert code == 3
    assert "OneHot (onehot: computes a value from a size known only at run time" in err
    assert "Traceback" not in err and not (tmp_path / "m.keras").exists()


def test_the_run_time_layer_holds_operator_names_not_code():
    from mwconv.layers.onnx_runtime import OPS, OnnxRuntimeOp
    layer = OnnxRuntimeOp(op="Shape", slots=[["tensor", None]], output_hint=[2])
    config = layer.get_config()
    assert config["op"] == "Shape" and config["output_hint"] == [2]
    assert OnnxRuntimeOp.from_config(config).op == "Shape"
    with pytest.raises((TypeError, ValueError), match="'Exec' is not one it computes"):
        OnnxRuntimeOp.from_config({**config, "op": "Exec"})
    assert "Shape" in OPS and "Loop" not in OPS and "If" not in OPS
