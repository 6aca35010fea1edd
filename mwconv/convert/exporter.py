"""``mwconv export``: SavedModel, ``.keras``, Keras 3 ``.weights.h5``, ONNX and safetensors,
each carrying the manifest, written atomically, verified unless asked not to.

>>> result = export("model.keras", "saved_model", "serving/")   # doctest: +SKIP
>>> result.report.ok, result.bytes
"""

import dataclasses
import json
import os

import h5py
import numpy as np

from mwconv.errors import UsageError
from mwconv.formats.names import EXPORT_FORMATS as FORMATS
from mwconv.formats.names import EXPORT_SUFFIXES
from mwconv.manifest import build_manifest, dumps
from mwconv.outputs import atomic_output, check_target
ONNX_EXTERNAL_THRESHOLD = 1536 << 20   # weights above this go to external data (protobuf stops at 2 GiB)
DEFAULT_OPSET = 17


@dataclasses.dataclass
class ExportResult:
    path: str
    format: str
    bytes: int
    weight_bytes: int
    report: object = None     # VerifyReport, or None with --no-verify

    def to_dict(self):
        out = {"path": self.path, "format": self.format, "bytes": self.bytes, "weight_bytes": self.weight_bytes,
               "size_ratio": round(self.bytes / max(self.weight_bytes, 1), 4)}
        out["verification"] = self.report.to_dict() if self.report is not None else None
        return out


def _note(progress, text):
    if progress:
        progress(text)


def _load(model):
    from mwconv import modelio
    keras = modelio.keras_api()
    if isinstance(model, keras.Model):
        return model, None
    from mwconv.sources.keras_file import check_keras_zip, load_keras_model
    path = os.fspath(model)
    _, manifest = check_keras_zip(path)
    return load_keras_model(path), manifest


def _manifest(model, previous):
    provenance = {w["path"]: w.get("provenance") for w in (previous or {}).get("weights", [])}
    return build_manifest(model, provenance)


def _tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


# -- SavedModel ------------------------------------------------------------------
def _serving_function(model):
    import tensorflow as tf

    from mwconv import modelio

    specs = modelio.input_specs(model)
    names = [n for n, _, _ in specs]
    signature = [tf.TensorSpec((None,) + tuple(shape[1:]), dtype, name=name) for name, shape, dtype in specs]
    outputs = modelio.output_names(model)
    keras = modelio.keras_api()

    @tf.function(input_signature=signature)
    def serve(*args):
        result = model(modelio.pack_inputs(model, dict(zip(names, args))), training=False)
        return dict(zip(outputs, keras.tree.flatten(result)))

    return serve, signature


def _with_tf_flags(model):
    """A model whose backend variables carry Keras's effective trainable flags
    (a layer frozen with ``layer.trainable = False`` keeps trainable tf.Variables)."""
    trainable = {id(v) for v in model.trainable_weights}
    stale = [v.path for v in model.weights if id(v) not in trainable and v.value.trainable]
    if not stale:
        return model
    from mwconv.convert.mixing import convert_to_mixed
    return convert_to_mixed(model, {v.path for v in model.weights if id(v) not in trainable})


def write_saved_model(model, staged, manifest):
    import tensorflow as tf

    model = _with_tf_flags(model)
    serve, _ = _serving_function(model)
    weights = {id(v) for v in model.weights}
    root = tf.__internal__.tracking.AutoTrackable()
    trainable = {id(v) for v in model.trainable_weights}
    # every variable is referenced from these lists and stored once
    root.trainable_variables = [v.value for v in model.weights if id(v) in trainable]
    root.non_trainable_variables = [v.value for v in model.weights if id(v) not in trainable]
    root.variables = [v.value for v in model.weights]
    root.other_state = [v.value for v in model.variables if id(v) not in weights]
    root.serve = serve
    tf.saved_model.save(root, staged, signatures={"serving_default": serve.get_concrete_function()})
    os.makedirs(os.path.join(staged, "assets.extra"), exist_ok=True)
    with open(os.path.join(staged, "assets.extra", "mwconv_manifest.json"), "w", encoding="utf8") as f:
        f.write(dumps(manifest))


# -- weights .h5 ---------------------------------------------------------------------
def write_weights_h5(model, staged, manifest):
    model.save_weights(staged)
    with h5py.File(staged, "a") as f:
        f.attrs["mwconv_manifest"] = dumps(manifest)


# -- safetensors --------------------------------------------------------------------
def write_safetensors(model, staged, manifest):
    """Every weight under its Keras path, in Keras layout, streamed one at a time;
    the manifest (with the trainable flags) in the header's ``__metadata__``."""
    from mwconv import progress
    from mwconv.formats import safetensors as st
    from mwconv import modelio

    keras = modelio.keras_api()
    tensors = [(v.path, tuple(v.shape), np.dtype(st.numpy_dtype(v.dtype)).name,
                lambda v=v: keras.ops.convert_to_numpy(v.value)) for v in model.weights]
    total = sum(int(np.prod(shape, dtype=np.int64)) * st.numpy_dtype(dtype).itemsize for _, shape, dtype, _ in tensors)
    metadata = {"mwconv_manifest": json.dumps(manifest), "format": "keras", "layout": "keras"}
    with progress.tensor_bar("writing safetensors", total) as bar:
        st.write(staged, tensors, metadata, on_tensor=lambda name, n: bar.update(n))


# -- ONNX ------------------------------------------------------------------------------
def _unsupported_ops(proto):
    import onnx
    return sorted({n.op_type for n in proto.graph.node
                   if (n.domain or "ai.onnx") == "ai.onnx" and not onnx.defs.has(n.op_type)})


def _convert(tf2onnx, fn, signature, opset, target):
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    except (ValueError, TypeError, RuntimeError, KeyError, NotImplementedError, AttributeError) as e:
        from mwconv.errors import InputRejected
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputRejected(f"tf2onnx cannot convert this model ({type(e).__name__}: {first})", path=target) from e
    unsupported = _unsupported_ops(proto)
    if unsupported:
        from mwconv.errors import InputRejected
        raise InputRejected(f"tf2onnx cannot convert the TensorFlow ops {', '.join(unsupported)} to ONNX opset "
                            f"{opset}; nothing was written", path=target)
    return proto


def _stateless_function(model):
    """The model as a function of its inputs AND its weights, so that tf2onnx
    converts a graph without copying any weight (they become graph inputs)."""
    import tensorflow as tf

    from mwconv import modelio

    keras = modelio.keras_api()
    specs = modelio.input_specs(model)
    names = [n for n, _, _ in specs]
    trainable, others = list(model.trainable_variables), list(model.non_trainable_variables)
    variables = trainable + others
    weight_names = [f"mwconv_w_{i}" for i in range(len(variables))]
    signature = [tf.TensorSpec((None,) + tuple(shape[1:]), dtype, name=name) for name, shape, dtype in specs]
    signature += [tf.TensorSpec(v.shape, v.dtype, name=n) for v, n in zip(variables, weight_names)]
    outputs = modelio.output_names(model)
    count, n_trainable = len(names), len(trainable)

    @tf.function(input_signature=signature)
    def serve(*args):
        inputs, weights = args[:count], list(args[count:])
        result, _ = model.stateless_call(weights[:n_trainable], weights[n_trainable:],
                                         modelio.pack_inputs(model, dict(zip(names, inputs))), training=False)
        return dict(zip(outputs, keras.tree.flatten(result)))

    return serve, signature, dict(zip(weight_names, variables))


def _attach_external(proto, weights, model_path, data_path, data_name):
    """Turn the weight graph inputs into initializers whose bytes go, one
    variable at a time, into one external data file."""
    import onnx
    from onnx import helper

    rename = {}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    del proto.graph.input[:]
    proto.graph.input.extend(inputs)
    from mwconv import progress

    offset = 0
    total = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in weights.values())
    with open(data_path, "wb") as f, progress.tensor_bar("writing ONNX external data", total) as bar:
        for name, variable in weights.items():
            value = np.ascontiguousarray(variable.numpy())
            value = value.astype(value.dtype.newbyteorder("<"), copy=False)
            pad = (-offset) % 4096
            f.write(b"\0" * pad)
            offset += pad
            f.write(value.tobytes())
            t = proto.graph.initializer.add()
            t.name = variable.path
            t.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
            t.dims.extend(value.shape)
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(value.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            offset += value.nbytes
            rename[name] = variable.path
            bar.update(value.nbytes)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    with open(model_path, "wb") as f:
        f.write(proto.SerializeToString())


def write_onnx(model, target, manifest, opset, force, progress):
    from mwconv._quiet import import_quietly
    import_quietly("tensorflow")
    tf2onnx = import_quietly("tf2onnx")
    import onnx

    weight_bytes = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in model.weights)
    large = weight_bytes > ONNX_EXTERNAL_THRESHOLD
    _note(progress, f"converting to ONNX opset {opset} with tf2onnx"
                    + (" (external data: weights exceed the 2 GiB protobuf limit)" if large else ""))
    if large:
        fn, signature, weights = _stateless_function(model)
    else:
        fn, signature = _serving_function(model)
    proto = _convert(tf2onnx, fn, signature, opset, target)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "mwconv_manifest", json.dumps(manifest)
    data_name = os.path.basename(target) + ".data"
    data_target = os.path.join(os.path.dirname(os.path.abspath(target)), data_name)
    if large:
        check_target(data_target, force)
    with atomic_output(target, force=force) as staged:
        if large:
            staged_data = os.path.join(os.path.dirname(staged), data_name)
            _note(progress, f"writing {weight_bytes} bytes of weights to {data_name}")
            _attach_external(proto, weights, staged, staged_data, data_name)
            os.replace(staged_data, data_target)
        else:
            onnx.save_model(proto, staged)


# -- the command ---------------------------------------------------------------------
def export(model, fmt, out, *, force=False, verify=True, opset=DEFAULT_OPSET, progress=None):
    """Write ``model`` (a .keras path or Keras model) as ``fmt`` to ``out``; verify it unless told not to."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    suffix = EXPORT_SUFFIXES[fmt]
    if suffix and not str(out).endswith(suffix):
        raise UsageError(f"a {fmt} artifact must end with {suffix}", path=out)
    check_target(out, force)
    _note(progress, f"loading {model if not hasattr(model, 'weights') else 'the model'}")
    keras_model, previous = _load(model)
    manifest = _manifest(keras_model, previous)
    weight_bytes = sum(int(np.prod(w["shape"], dtype=np.int64)) * np.dtype(w["dtype"]).itemsize
                       for w in manifest["weights"])
    _note(progress, f"writing {fmt} to {out}")
    if fmt == "saved_model":
        with atomic_output(out, force=force) as staged:
            write_saved_model(keras_model, staged, manifest)
    elif fmt == "keras":
        from mwconv.convert.writers import save_keras
        save_keras(keras_model, out, manifest, force=force)
    elif fmt == "weights_h5":
        with atomic_output(out, force=force) as staged:
            write_weights_h5(keras_model, staged, manifest)
    elif fmt == "safetensors":
        with atomic_output(out, force=force) as staged:
            write_safetensors(keras_model, staged, manifest)
    else:
        write_onnx(keras_model, out, manifest, opset, force, progress)
    size = _tree_size(out) + (_tree_size(str(out) + ".data") if fmt == "onnx" and os.path.exists(str(out) + ".data")
                              else 0)
    result = ExportResult(os.fspath(out), fmt, size, weight_bytes)
    if verify:
        _note(progress, "verifying (partition, outputs)")
        from mwconv.verification import verify as run_verify
        result.report = run_verify(out, keras_model, checks=["partition", "outputs"])
    return result


__all__ = ["FORMATS", "ExportResult", "export"]
