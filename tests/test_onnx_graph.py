"""ONNX graph import: every supported operator, built with onnx.helper, rebuilt in
Keras and compared with onnxruntime (max abs error <= 1e-5 in float32)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mwconv.convert.importer import import_weights
from mwconv import modelio
from tests.helpers import listing, run_cli

RNG = np.random.default_rng(42)
F = TensorProto.FLOAT


def w(*shape, positive=False):
    arr = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(arr) + 0.5 if positive else arr


def graph_model(nodes, inputs, outputs, inits=None, opset=17, ir=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir:
        model.ir_version = ir
    if all(o.type.tensor_type.HasField("shape") for o in outputs):
        onnx.checker.check_model(model)
    return model


def vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def run_both(tmp_path, model, feeds, channels_last=False, tol=1e-5):
    import keras
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    import_weights(path, output=tmp_path / "m.keras", channels_last=channels_last)
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)  # no custom_objects
    keras_feeds = dict(feeds)
    if channels_last:
        keras_feeds = {k: np.moveaxis(v, 1, -1) if v.ndim >= 3 else v for k, v in feeds.items()}
    got = modelio.call_model(reloaded, keras_feeds)
    if channels_last:
        got = [np.moveaxis(g, -1, 1) if g.ndim >= 3 else g for g in got]
    assert len(got) == len(want)
    for g, e in zip(got, want):
        assert g.shape == e.shape, (g.shape, e.shape)
        assert np.abs(g - e).max() <= tol, np.abs(g - e).max()
    assert all(not t for t in (v.trainable for v in reloaded.trainable_weights))  # imported: all frozen
    assert reloaded.trainable_weights == []
    return reloaded


def single(op, x_shape, y_shape, inits=None, extra_inputs=(), opset=17, **attrs):
    node = helper.make_node(op, ["x", *extra_inputs], ["y"], name=f"{op.lower()}_node", **attrs)
    return graph_model([node], [vi("x", x_shape)], [vi("y", y_shape)], inits, opset)


X4 = RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)


# -- Gemm / MatMul ------------------------------------------------------------------
@pytest.mark.parametrize("trans_b,alpha,beta,c_shape", [
    (1, 1.0, 1.0, (5,)), (0, 1.0, 1.0, (5,)), (1, 0.5, 2.0, (1, 5)), (0, 1.5, 1.0, ()), (1, 1.0, 1.0, None),
])
def test_gemm(trans_b, alpha, beta, c_shape, tmp_path):
    b = w(5, 6) if trans_b else w(6, 5)
    inits = {"B": b}
    inputs = ["x", "B"]
    if c_shape is not None:
        inits["C"] = w(*c_shape) if c_shape else np.float32(0.7).reshape(())
        inputs.append("C")
    node = helper.make_node("Gemm", inputs, ["y"], name="gemm", transB=trans_b, alpha=alpha, beta=beta)
    model = graph_model([node], [vi("x", ["N", 6])], [vi("y", ["N", 5])], inits)
    run_both(tmp_path, model, {"x": w(3, 6)})


def test_gemm_trans_a(tmp_path):
    node = helper.make_node("Gemm", ["x", "B", "C"], ["y"], name="gemm", transA=1, transB=1, alpha=0.5)
    model = graph_model([node], [vi("x", [6, "M"])], [vi("y", ["M", 5])], {"B": w(5, 6), "C": w(5)})
    run_both(tmp_path, model, {"x": w(6, 3)})


def test_opset_6_model(tmp_path):
    """Opset 6: Gemm with broadcast=1, BatchNormalization with is_test, initializers also graph inputs."""
    inits = {"W": w(5, 4), "C": w(5), "s": w(5), "b": w(5), "m": w(5), "v": w(5, positive=True)}
    nodes = [helper.make_node("Gemm", ["x", "W", "C"], ["g"], transB=1, broadcast=1),
             helper.make_node("BatchNormalization", ["g", "s", "b", "m", "v"], ["n"], is_test=1, epsilon=1e-5),
             helper.make_node("Relu", ["n"], ["y"])]
    inputs = [vi("x", ["N", 4])] + [vi(k, list(v.shape)) for k, v in inits.items()]
    model = graph_model(nodes, inputs, [vi("y", ["N", 5])], inits, opset=6, ir=3)
    onnx.save(model, tmp_path / "m.onnx")
    x = w(3, 4)
    keras_model, _ = import_weights(tmp_path / "m.onnx")
    h = x @ inits["W"].T + inits["C"]
    h = (h - inits["m"]) / np.sqrt(inits["v"] + 1e-5) * inits["s"] + inits["b"]
    np.testing.assert_allclose(modelio.call_model(keras_model, {"x": x})[0], np.maximum(h, 0), atol=1e-5)


def test_newest_opset_onnx_writes(tmp_path):
    import onnxruntime as ort

    opset = onnx.defs.onnx_opset_version()
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Softmax", ["f"], ["y"])]
    model = graph_model(nodes, [vi("x", ["N", 3, 9, 7])], [vi("y", None)], {"W": w(2, 3, 3, 3)}, opset=opset)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime may lag behind onnx's newest opset
        pytest.skip(f"onnxruntime cannot run opset {opset} yet: {str(e).splitlines()[0]}")
    run_both(tmp_path, model, {"x": X4})


def test_matmul_with_initializer_and_between_inputs(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node("MatMul", ["h", "z"], ["y"], name="mm2")]
    model = graph_model(nodes, [vi("x", ["N", 4, 6]), vi("z", ["N", 5, 3])], [vi("y", ["N", 4, 3])], {"W": w(6, 5)})
    run_both(tmp_path, model, {"x": w(2, 4, 6), "z": w(2, 5, 3)})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("constant_first", [False, True])
def test_arithmetic_with_initializer(op, constant_first, tmp_path):
    c = w(3, 1, 1, positive=True)
    inputs = ["c", "x"] if constant_first else ["x", "c"]
    node = helper.make_node(op, inputs, ["y"], name=op.lower())
    model = graph_model([node], [vi("x", ["N", 3, 9, 7])], [vi("y", ["N", 3, 9, 7])], {"c": c})
    run_both(tmp_path, model, {"x": X4})


def test_arithmetic_between_inputs(tmp_path):
    nodes = [helper.make_node(op, ["a", "b"], [f"o{i}"]) for i, op in enumerate(["Add", "Sub", "Mul", "Div"])]
    outs = [vi(f"o{i}", ["N", 4]) for i in range(4)]
    model = graph_model(nodes, [vi("a", ["N", 4]), vi("b", ["N", 4])], outs)
    run_both(tmp_path, model, {"a": w(3, 4), "b": w(3, 4, positive=True)})


# -- convolutions ---------------------------------------------------------------------
@pytest.mark.parametrize("attrs,w_shape,x_shape", [
    ({}, (4, 3, 3, 3), (2, 3, 9, 7)),
    ({"strides": [2, 2]}, (5, 3, 3, 2), (2, 3, 9, 7)),
    ({"dilations": [2, 1]}, (4, 3, 3, 3), (2, 3, 9, 7)),
    ({"pads": [1, 0, 2, 1]}, (4, 3, 3, 3), (2, 3, 9, 7)),                  # asymmetric
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (4, 3, 4, 4), (2, 3, 9, 7)),
    ({"auto_pad": "SAME_LOWER", "strides": [2, 2]}, (4, 3, 4, 4), (2, 3, 9, 7)),
    ({"auto_pad": "VALID"}, (4, 3, 3, 3), (2, 3, 9, 7)),
    ({"group": 3}, (6, 1, 3, 3), (2, 3, 9, 7)),                             # depthwise, multiplier 2
    ({"group": 2}, (6, 2, 3, 3), (2, 4, 9, 7)),                             # grouped
    ({"strides": [2]}, (4, 3, 3), (2, 3, 11)),                               # 1-D
    ({"group": 3, "pads": [1, 1]}, (3, 1, 3), (2, 3, 11)),                  # depthwise 1-D
    ({"pads": [1, 0, 1, 0, 1, 0]}, (2, 3, 2, 3, 2), (1, 3, 5, 6, 4)),       # 3-D
])
def test_conv(attrs, w_shape, x_shape, tmp_path):
    out_shape = None
    inits = {"W": w(*w_shape), "B": w(w_shape[0])}
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv", **attrs)
    model = graph_model([node], [vi("x", ["N", *x_shape[1:]])], [vi("y", out_shape)], inits)
    run_both(tmp_path, model, {"x": RNG.standard_normal(x_shape).astype(np.float32)})


def test_conv_channels_last_model(tmp_path):
    inits = {"W": w(4, 3, 3, 3), "B": w(4)}
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv", pads=[1, 1, 1, 1])
    model = graph_model([node], [vi("x", ["N", 3, 9, 7])], [vi("y", None)], inits)
    reloaded = run_both(tmp_path, model, {"x": X4}, channels_last=True)
    assert tuple(reloaded.inputs[0].shape) == (None, 9, 7, 3)


@pytest.mark.parametrize("attrs,w_shape,x_shape", [
    ({"strides": [2, 2]}, (3, 4, 3, 3), (2, 3, 5, 4)),
    ({"strides": [2, 2], "pads": [1, 0, 1, 1], "output_padding": [1, 0]}, (3, 2, 3, 2), (2, 3, 5, 4)),
    ({"strides": [3]}, (3, 2, 4), (2, 3, 6)),
])
def test_conv_transpose(attrs, w_shape, x_shape, tmp_path):
    node = helper.make_node("ConvTranspose", ["x", "W", "B"], ["y"], name="deconv", **attrs)
    model = graph_model([node], [vi("x", ["N", *x_shape[1:]])], [vi("y", None)], {"W": w(*w_shape), "B": w(w_shape[1])})
    run_both(tmp_path, model, {"x": RNG.standard_normal(x_shape).astype(np.float32)})


# -- embedding, normalization, activations --------------------------------------------
def test_gather_embedding(tmp_path):
    node = helper.make_node("Gather", ["table", "ids"], ["y"], name="embed")
    model = graph_model([node], [vi("ids", ["N", 5], TensorProto.INT64)], [vi("y", ["N", 5, 4])], {"table": w(11, 4)})
    run_both(tmp_path, model, {"ids": RNG.integers(0, 11, (3, 5))})


def test_batch_normalization(tmp_path):
    inits = {"s": w(3), "b": w(3), "m": w(3), "v": w(3, positive=True)}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", epsilon=1e-3)
    model = graph_model([node], [vi("x", ["N", 3, 9, 7])], [vi("y", ["N", 3, 9, 7])], inits)
    run_both(tmp_path, model, {"x": X4})


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (7,)])
def test_prelu(slope_shape, tmp_path):
    node = helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu")
    model = graph_model([node], [vi("x", ["N", 3, 9, 7])], [vi("y", ["N", 3, 9, 7])], {"slope": w(*slope_shape)})
    run_both(tmp_path, model, {"x": X4})


@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}), ("Selu", {}), ("Sigmoid", {}),
    ("Tanh", {}), ("Softplus", {}), ("Softsign", {}), ("Softmax", {}), ("LogSoftmax", {"axis": 1}),
    ("Identity", {}), ("Dropout", {}),
])
def test_elementwise_ops(op, attrs, tmp_path):
    run_both(tmp_path, single(op, ["N", 3, 9, 7], ["N", 3, 9, 7], **attrs), {"x": X4})


def test_legacy_softmax_flattens_from_axis(tmp_path):
    model = single("Softmax", ["N", 3, 9, 7], ["N", 3, 9, 7], opset=11, axis=1)
    run_both(tmp_path, model, {"x": X4})


# -- shape ops and pools --------------------------------------------------------------------
def test_flatten_reshape_transpose_concat(tmp_path):
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Concat", ["r", "f"], ["y"], axis=-1),
    ]
    model = graph_model(nodes, [vi("x", ["N", 3, 9, 7])], [vi("y", ["N", 378])],
                        {"shape": np.array([0, -1], dtype=np.int64)})
    run_both(tmp_path, model, {"x": X4})


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 2]}),
    ("MaxPool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 0]}),
    ("MaxPool", {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("GlobalAveragePool", {}),
])
def test_pools(op, attrs, tmp_path):
    run_both(tmp_path, single(op, ["N", 3, 9, 7], None, **attrs), {"x": X4})


def test_pool_1d(tmp_path):
    x = RNG.standard_normal((2, 3, 11)).astype(np.float32)
    run_both(tmp_path, single("MaxPool", ["N", 3, 11], None, kernel_shape=[3], strides=[2]), {"x": x})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode, tmp_path):
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64)
    node = helper.make_node("Pad", ["x", "pads", "value"], ["y"], name="pad", mode=mode)
    inits = {"pads": pads, "value": np.array(0.5, np.float32)}
    model = graph_model([node], [vi("x", ["N", 3, 9, 7])], [vi("y", None)], inits)
    run_both(tmp_path, model, {"x": X4})


def test_pad_opset2_attributes(tmp_path):
    node = helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=1.5)
    model = graph_model([node], [vi("x", ["N", 3, 9, 7])], [vi("y", None)], opset=2)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    model_keras, report = import_weights(path)
    got = modelio.call_model(model_keras, {"x": X4})[0]
    np.testing.assert_array_equal(got, np.pad(X4, [(0, 0), (0, 0), (1, 0), (0, 2)], constant_values=1.5))


def test_old_opset_with_initializers_as_inputs(samples, tmp_path):
    """The fixtures' opset-9 MLP lists its initializers as graph inputs too."""
    io = np.load(samples / "mlp_opset9.io.npz")
    model, report = import_weights(samples / "mlp_opset9.onnx")
    assert [t.name for t in model.inputs] == ["x"]
    np.testing.assert_allclose(modelio.call_model(model, {"x": io["input:x"]})[0], io["output:y"], atol=1e-5)
    assert sorted(report.provenance.values(), key=lambda p: p["tensor"])[0]["match"] == "graph"


def test_fixture_cnn_and_names(samples, tmp_path):
    io = np.load(samples / "cnn_external.io.npz")
    code, _, err = run_cli("import", samples / "cnn_external.onnx", "-o", tmp_path / "cnn.keras")
    assert code == 0, err
    import keras
    model = keras.saving.load_model(tmp_path / "cnn.keras", safe_mode=True)
    assert {"conv", "bn", "relu", "pool", "flatten", "fc"} <= {layer.name for layer in model.layers}
    got = modelio.call_model(model, {"input": io["input:input"]})[0]
    assert np.abs(got - io["output:logits"]).max() <= 1e-5


# -- a real exporter: tf2onnx from Keras models --------------------------------------------
@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_models_exported_by_tf2onnx(kind, tmp_path):
    import keras

    from mwconv.convert.exporter import export

    if kind == "cnn":
        inp = keras.Input((9, 7, 3), name="image")
        h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
        h = keras.layers.MaxPooling2D(2)(h)
        h = keras.layers.Conv2D(5, 3, strides=2)(h)
        h = keras.layers.Flatten()(h)
        out = keras.layers.Dense(3, activation="softmax")(h)
        x = {"image": RNG.standard_normal((2, 9, 7, 3)).astype(np.float32)}
    else:
        inp = keras.Input((6,), name="features")
        h = keras.layers.Dense(8, activation="tanh")(inp)
        h = keras.layers.Dense(8, activation="sigmoid")(h)
        out = keras.layers.Dense(4)(h)
        x = {"features": RNG.standard_normal((3, 6)).astype(np.float32)}
    model = keras.Model(inp, out)
    export(model, "onnx", tmp_path / "m.onnx", verify=False)
    onnx_model = onnx.load(tmp_path / "m.onnx")
    onnx_model.graph.name = kind
    run_both(tmp_path / ".." / tmp_path.name, onnx_model, x)


# -- refusals ----------------------------------------------------------------------------------
def test_unsupported_ops_are_listed_with_node_names(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Hardmax", ["a"], ["b"], name="max_1"),
             helper.make_node("Hardmax", ["b"], ["c"], name="max_2"),
             helper.make_node("Shrink", ["c"], ["y"], name="shrink")]
    onnx.save(graph_model(nodes, [vi("x", ["N", 4])], [vi("y", ["N", 4])]), tmp_path / "u.onnx")
    code, _, err = run_cli("import", tmp_path / "u.onnx", "-o", tmp_path / "u.keras")
    assert code == 3
    assert "unsupported operators: Hardmax (max_1, max_2); Shrink (shrink)" in err
    assert "Pass --model" in err and "--map" in err
    assert listing(tmp_path) == ["u.onnx"]


def test_unsupported_attribute_names_the_node(tmp_path):
    model = single("AveragePool", ["N", 3, 9, 7], None, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                   count_include_pad=1)
    onnx.save(model, tmp_path / "p.onnx")
    code, _, err = run_cli("import", tmp_path / "p.onnx", "-o", tmp_path / "p.keras")
    assert code == 3 and ("AveragePool (averagepool_node: ceil_mode=1 with count_include_pad=1 where a window runs "
                          "past the input") in err
    assert not (tmp_path / "p.keras").exists()
    # without counting the padding (the default), a window past the input averages what it covers
    model = single("AveragePool", ["N", 3, 9, 7], ["N", 3, 5, 4], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    run_both(tmp_path, model, {"x": X4})


def test_malformed_graph(tmp_path):
    node = helper.make_node("Relu", ["nowhere"], ["y"], name="lost")
    graph = helper.make_graph([node], "g", [vi("x", ["N", 4])], [vi("y", ["N", 4])])
    onnx.save(helper.make_model(graph), tmp_path / "bad.onnx")  # not checked: it is malformed on purpose
    code, _, err = run_cli("import", tmp_path / "bad.onnx", "-o", tmp_path / "bad.keras")
    assert code == 3 and "node 'lost' (Relu) reads 'nowhere'" in err and "malformed graph" in err


def test_imported_onnx_model_exports_to_saved_model_with_same_outputs(samples, tmp_path):
    import tensorflow as tf

    run_cli("import", samples / "cnn_external.onnx", "-o", tmp_path / "cnn.keras")
    code, _, err = run_cli("export", tmp_path / "cnn.keras", "--format", "saved_model", "-o", tmp_path / "sm")
    assert code == 0, err
    io = np.load(samples / "cnn_external.io.npz")
    fn = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    got = list(fn(input=tf.constant(io["input:input"])).values())[0].numpy()
    assert np.abs(got - io["output:logits"]).max() <= 1e-5
