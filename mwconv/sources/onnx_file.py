"""ONNX sources: initializers and ``Constant`` node tensors, embedded or in
external data files. The graph is parsed without loading external data; each
tensor is read from its own byte range when asked for."""

import json
import os

import numpy as np

from mwconv.errors import InputRejected
from mwconv.sources.base import Source, resolve_inside

MANIFEST_KEY = "mwconv_manifest"


class OnnxSource(Source):
    format = "onnx"
    default_layout = "onnx"
    architecture_kind = "onnx-graph"
    has_architecture = True

    def __init__(self, path):
        super().__init__(path)
        import onnx
        from google.protobuf.message import DecodeError

        try:
            self.model = onnx.load(self.path, load_external_data=False)
        except (DecodeError, ValueError, OSError, RuntimeError) as e:
            raise InputRejected(f"corrupt or truncated ONNX file ({type(e).__name__}: {e})", path=path) from e
        if not self.model.HasField("graph"):
            raise InputRejected("ONNX file has no graph (corrupt or not an ONNX model)", path=path)
        self._tensors = {}
        self._external = {}
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
        self._manifest = json.loads(props[MANIFEST_KEY]) if MANIFEST_KEY in props else None

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
            offset = int(entries.get("offset", 0))
            length = int(entries.get("length", info.nbytes))
            present = max(0, min(length, os.path.getsize(real) - offset))
            self._check_backed(name, present, f"bytes are present in '{location}'")
            if present < info.nbytes:
                raise InputRejected(f"declares {info.nbytes} bytes but '{location}' holds only {present} "
                                    f"at offset {offset} (truncated)", path=self.path, tensor=name)
            self._external[name] = (real, offset)
        else:
            present = len(t.raw_data) if t.raw_data else self._typed_count(t) * np.dtype(dtype).itemsize
            self._check_backed(name, present)
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

    def _read(self, name):
        info = self._infos[name]
        if name in self._external:
            real, offset = self._external[name]
            count = int(np.prod(info.shape, dtype=np.int64))
            with open(real, "rb") as f:
                f.seek(offset)
                arr = np.fromfile(f, dtype=np.dtype(info.dtype).newbyteorder("<"), count=count)
            return arr.astype(info.dtype, copy=False).reshape(info.shape)
        from onnx import numpy_helper
        return numpy_helper.to_array(self._tensors[name])

    def consumers(self):
        usage = {}
        for node in self.model.graph.node:
            attrs = {a.name: a.i for a in node.attribute if a.type == a.INT}
            for i, name in enumerate(node.input):
                usage.setdefault(name, (node.op_type, i, attrs))
        return usage

    def manifest(self):
        return self._manifest
