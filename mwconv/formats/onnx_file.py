"""ONNX sources: initializers and ``Constant`` node tensors, embedded or in
external data files. The graph is parsed without loading external data; each
tensor is read from its own byte range when asked for."""

import json
import os

import numpy as np

from mwconv.errors import InputRejected
from mwconv.formats.artifact import Artifact
from mwconv.formats.base import Source, parse_json, resolve_inside
from mwconv.formats.format import Format
from mwconv.formats.onnx_convert import convert_function
from mwconv.formats.tf_functions import stateless_function
from mwconv.formats.onnx_data import data_name, sweep_data
from mwconv.outputs import atomic_output, commit_file

MANIFEST_KEY = "mwconv_manifest"
LEAN_MIN_BYTES = 1 << 20    # embedded initializers from this size are left in the file (onnx_wire)


def _external_range(entries, nbytes, path, name):
    """``(offset, length)`` of an external-data entry: non-negative integers, length equal to the
    tensor's byte size (when given)."""
    try:
        offset, length = int(entries.get("offset", 0)), int(entries.get("length", nbytes))
    except ValueError as e:
        raise InputRejected(f"external data offset/length are not integers ({e})", path=path, tensor=name) from e
    if offset < 0 or length < 0:
        raise InputRejected(f"external data offset {offset} / length {length} is negative (corrupt)", path=path,
                            tensor=name)
    if length != nbytes:
        raise InputRejected(f"external data length {length} differs from the {nbytes} bytes its dims need "
                            "(corrupt)", path=path, tensor=name)
    return offset, length


class OnnxSource(Source):
    format = "onnx"
    default_layout = "onnx"
    architecture_kind = "onnx-graph"
    has_architecture = True

    def __init__(self, path):
        super().__init__(path)
        import onnx
        from google.protobuf.message import DecodeError

        from mwconv.formats.onnx_wire import lean_load

        try:      # large embedded tensors stay in the file, read one at a time
            self.model, self._raw = lean_load(self.path, LEAN_MIN_BYTES)
        except (DecodeError, ValueError, OSError, RuntimeError):
            self._raw = {}
            try:  # onnx's own parser names what is wrong
                self.model = onnx.load(self.path, load_external_data=False)
            except (DecodeError, ValueError, OSError, RuntimeError) as e:
                raise InputRejected(f"corrupt or truncated ONNX file ({type(e).__name__}: {e})", path=path) from e
        if not self.model.HasField("graph"):
            raise InputRejected("ONNX file has no graph (corrupt or not an ONNX model)", path=path)
        self._tensors = {}
        self._external = {}
        self._derived = {}
        graph = self.model.graph
        for t in graph.initializer:
            self._scan(t, t.name)
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value" and attr.HasField("t"):
                        self._scan(attr.t, node.output[0])
        init_names = {t.name for t in graph.initializer}
        self._metadata.update({
            "ir_version": self.model.ir_version,
            "producer": f"{self.model.producer_name} {self.model.producer_version}".strip(),
            "opset": {o.domain or "ai.onnx": o.version for o in self.model.opset_import},
            "nodes": len(graph.node),
            "op_types": sorted({n.op_type for n in graph.node}),
            "inputs": [i.name for i in graph.input if i.name not in init_names],
            "outputs": [o.name for o in graph.output],
            "initializers_listed_as_inputs": sum(1 for i in graph.input if i.name in init_names),
            "external_data": bool(self._external),
        })
        props = {p.key: p.value for p in self.model.metadata_props}
        self._manifest = parse_json(props.get(MANIFEST_KEY), self.path, f"{MANIFEST_KEY} metadata entry")

    def _scan(self, t, name):
        import onnx
        from onnx import helper

        if t.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            return
        try:
            dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
        except (KeyError, ValueError) as e:
            raise InputRejected(f"unsupported ONNX data type {t.data_type}", path=self.path, tensor=name) from e
        info = self._add(name, list(t.dims), dtype)
        self._tensors[name] = t
        if t.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in t.external_data}
            location = entries.get("location", "")
            real = resolve_inside(self.path, location, name)
            offset, length = _external_range(entries, info.nbytes, self.path, name)
            size = os.path.getsize(real)
            if offset + length > size:
                self._check_backed(name, max(0, size - offset), f"bytes are present in '{location}'")
            present = max(0, min(length, size - offset))
            self._check_backed(name, present, f"bytes are present in '{location}'")
            if present < info.nbytes:
                raise InputRejected(f"declares {info.nbytes} bytes but '{location}' holds only {present} "
                                    f"at offset {offset} (truncated)", path=self.path, tensor=name)
            self._external[name] = (real, offset)
        else:
            raw = self._raw[name][1] if name in self._raw else len(t.raw_data)
            present = raw or self._typed_count(t) * np.dtype(dtype).itemsize
            self._check_backed(name, present)
            if raw and present > info.nbytes:
                raise InputRejected(f"its raw_data holds {present} bytes but its dims {tuple(t.dims)} need "
                                    f"{info.nbytes} (corrupt)", path=self.path, tensor=name)
            if present < info.nbytes:
                raise InputRejected(f"declares {info.nbytes} bytes but only {present} are embedded (truncated)",
                                    path=self.path, tensor=name)

    @staticmethod
    def _typed_count(t):
        for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            n = len(getattr(t, field))
            if n:
                return n
        return 0

    def add_derived(self, name, array):
        """A tensor the graph importer computed from constants (a folded shape, an expanded
        class token): it is read like an initializer from now on."""
        array = np.asarray(array)
        self._add(name, array.shape, array.dtype)
        self._derived[name] = array

    def _read(self, name):
        info = self._infos[name]
        if name in self._derived:
            return self._derived[name]
        if name in self._external or name in self._raw:
            real, offset = self._external[name] if name in self._external else (self.path, self._raw[name][0])
            count = int(np.prod(info.shape, dtype=np.int64))
            with open(real, "rb") as f:
                f.seek(offset)
                arr = np.fromfile(f, dtype=np.dtype(info.dtype).newbyteorder("<"), count=count)
            return arr.astype(info.dtype, copy=False).reshape(info.shape)
        from onnx import numpy_helper
        return numpy_helper.to_array(self._tensors[name])

    def run_model(self, inputs, tensors=None):
        """The graph in onnxruntime (``onnx_run.run``); ``tensors``: intermediate tensors to
        return instead of the graph outputs (``mwconv compare``)."""
        from mwconv.formats.onnx_run import run
        return run(self, inputs, tensors)

    def stored_apart(self):
        """Names of the tensors whose bytes the loaded graph does not hold (external data, and
        large embedded tensors left in the file)."""
        return set(self._external) | set(self._raw)

    def consumers(self):
        usage = {}
        for node in self.model.graph.node:
            attrs = {a.name: a.i for a in node.attribute if a.type == a.INT}
            for i, name in enumerate(node.input):
                usage.setdefault(name, (node.op_type, i, attrs))
        return usage

    def manifest(self):
        return self._manifest


# -- writing (tf2onnx) --------------------------------------------------------------
ONNX_EXTERNAL_THRESHOLD = 1536 << 20   # weights above this go to external data (protobuf stops at 2 GiB)


def _constants_to_initializers(proto, constants):
    """Graph inputs that are captured constants become initializers (they are no model input)."""
    import onnx

    keep = []
    for graph_input in proto.graph.input:
        if graph_input.name in constants:
            proto.graph.initializer.append(onnx.numpy_helper.from_array(constants[graph_input.name],
                                                                        graph_input.name))
        else:
            keep.append(graph_input)
    del proto.graph.input[:]
    proto.graph.input.extend(keep)


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tensor_header(variable):
    """An initializer's TensorProto without its bytes."""
    import onnx
    from onnx import helper
    t = onnx.TensorProto(name=variable.path, data_type=helper.np_dtype_to_tensor_dtype(np.dtype(variable.dtype)))
    t.dims.extend(int(d) for d in variable.shape)
    return t


def _little_endian(variable):
    value = np.ascontiguousarray(variable.numpy())
    return value.astype(value.dtype.newbyteorder("<"), copy=False)


def _weights_to_initializers(proto, weights):
    """Drop the weight graph inputs and point their consumers at the weights' Keras paths."""
    rename = {name: variable.path for name, variable in weights.items()}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    del proto.graph.input[:]
    proto.graph.input.extend(inputs)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def _attach_external(proto, weights, model_path, data_path, data_name, bar):
    """The weights' bytes go, one variable at a time, into one external data file."""
    import onnx

    _weights_to_initializers(proto, weights)
    offset = 0
    with open(data_path, "wb") as f:
        for variable in weights.values():
            value = _little_endian(variable)
            pad = (-offset) % 4096
            f.write(b"\0" * pad)
            offset += pad
            f.write(value.tobytes())
            t = proto.graph.initializer.add()
            t.CopyFrom(_tensor_header(variable))
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(value.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            offset += value.nbytes
            bar.update(value.nbytes)
    with open(model_path, "wb") as f:
        f.write(proto.SerializeToString())


def _write_embedded(proto, weights, model_path, bar):
    """One .onnx file with the weights inside, streamed one variable at a time: the graph's
    initializers are appended in protobuf's wire format (ModelProto.graph is field 7,
    GraphProto.initializer field 5, TensorProto.raw_data field 9), so no copy of all the
    weights is ever built in memory."""
    _weights_to_initializers(proto, weights)
    entries = []
    for variable in weights.values():
        nbytes = int(np.prod(variable.shape, dtype=np.int64)) * np.dtype(variable.dtype).itemsize
        head = _tensor_header(variable).SerializeToString()
        body = len(head) + 1 + len(_varint(nbytes)) + nbytes
        entries.append((variable, head, nbytes, body))
    graph = proto.graph.SerializeToString()
    graph_length = len(graph) + sum(1 + len(_varint(body)) + body for _, _, _, body in entries)
    proto.ClearField("graph")
    with open(model_path, "wb") as f:
        f.write(proto.SerializeToString())
        f.write(b"\x3a" + _varint(graph_length) + graph)
        for variable, head, nbytes, body in entries:
            value = _little_endian(variable)
            if value.nbytes != nbytes:
                raise ValueError(f"variable {variable.path} holds {value.nbytes} bytes, expected {nbytes}")
            f.write(b"\x2a" + _varint(body) + head + b"\x4a" + _varint(nbytes))
            f.write(value.tobytes())
            bar.update(nbytes)


def write(model, target, manifest, options):
    """tf2onnx at ``options.opset``; external data beside the model beyond 1.5 GiB of weights."""
    opset, force = options.opset, options.force
    from mwconv._quiet import import_quietly
    import_quietly("tensorflow")
    tf2onnx = import_quietly("tf2onnx")

    weight_bytes = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in model.weights)
    large = weight_bytes > ONNX_EXTERNAL_THRESHOLD
    options.note(f"converting to ONNX opset {opset} with tf2onnx"
                    + (" (external data: weights exceed the 2 GiB protobuf limit)" if large else ""))
    fn, signature, weights, constants = stateless_function(model)     # weights as inputs: never copied
    proto = convert_function(tf2onnx, fn, signature, opset, target)
    _constants_to_initializers(proto, constants)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "mwconv_manifest", json.dumps(manifest)
    from mwconv import progress
    committed = None
    try:
        with atomic_output(target, force=force) as staged, \
                progress.tensor_bar("writing ONNX weights", weight_bytes) as bar:
            if large:
                name = data_name(target, staged)
                staged_data = os.path.join(os.path.dirname(staged), name)
                options.note(f"writing {weight_bytes} bytes of weights to {name}")
                _attach_external(proto, weights, staged, staged_data, name, bar)
                committed = os.path.join(os.path.dirname(os.path.abspath(target)), name)
                commit_file(staged_data, committed)     # a name no other model points at
            else:
                _write_embedded(proto, weights, staged, bar)
    except BaseException:
        if committed and os.path.exists(committed):
            os.remove(committed)                        # the model did not follow: its data goes too
        raise
    sweep_data(target)


# -- verifying ----------------------------------------------------------------------
class OnnxArtifact(Artifact):
    kind = "onnx"
    trainable_flags = False
    tolerance = "onnx"

    def __init__(self, path, reference_model=None):
        super().__init__(path)
        self.source = OnnxSource(self.path)
        self.manifest = self.source.manifest()
        self._sessions = {}

    def _session(self, provider):
        if provider not in self._sessions:
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._sessions[provider] = ort.InferenceSession(self.path, options, providers=[provider])
        return self._sessions[provider]

    def input_specs(self):
        from onnx import helper
        init = {t.name for t in self.source.model.graph.initializer}
        specs = []
        for i in self.source.model.graph.input:
            if i.name in init:
                continue
            t = i.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            specs.append((i.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name))
        return specs

    def output_names(self):
        return [o.name for o in self.source.model.graph.output]

    def devices(self):
        import onnxruntime as ort
        available = ort.get_available_providers()
        return ["CPUExecutionProvider"] + [p for p in ("CUDAExecutionProvider",) if p in available]

    def run(self, inputs, device=None):
        sess = self._session(device or "CPUExecutionProvider")
        feed = {n: inputs[n] for n, _, _ in self.input_specs()}
        return [np.asarray(o) for o in sess.run(self.output_names(), feed)]



def _sniff(path, head):
    # ONNX ModelProto: field 1 (ir_version, varint) comes first in every file written by
    # onnx; a protobuf varint key 0x08 then a small version number
    return head[:1] == b"\x08" and 1 <= head[1] <= 32


FORMAT = Format("onnx", "ONNX protobuf", (".onnx",), _sniff, "mwconv.formats.onnx_file:OnnxSource",
                f"the {MANIFEST_KEY} entry of metadata_props", tolerance="onnx",
                artifact="mwconv.formats.onnx_file:OnnxArtifact", write=write)
