"""Build a Keras functional model from an ONNX graph, for ``mwconv import
model.onnx`` without ``--model``.

Weight-bearing operators become (mixed) Keras layers whose weights the
importer fills from the initializers; the others become small registered
layers (``mwconv.layers.onnx_ops``). The model takes and returns tensors in
the ONNX model's own layout (NCHW stays NCHW: convolutions and pools run
channels-last between two transposes, since TensorFlow's CPU kernels are
channels-last only); ``channels_last=True`` gives an NHWC model instead.

Op handlers live by family in ``shape_ops``, ``linear_ops`` and ``conv_ops``
as ``op_<Type>`` methods; an op without a handler is unsupported by itself.
"""

import re

import numpy as np

from mwconv.convert.onnx.common import ACTIVATIONS, Unsupported, attrs
from mwconv.convert.onnx.conv_ops import ConvOps
from mwconv.convert.onnx.linear_ops import LinearOps
from mwconv.convert.onnx.shape_ops import ShapeOps
from mwconv.errors import InputRejected, shorten


class GraphBuilder(ShapeOps, LinearOps, ConvOps):
    """Walks the graph once, in order, keeping a Keras tensor per ONNX tensor name."""

    def __init__(self, source, channels_last=False):
        import onnx

        from mwconv.modelio import keras_api
        self.keras = keras_api()
        self.src = source
        self.model = source.model
        self.graph = self.model.graph
        self.channels_last = channels_last
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.constants = set(source.keys())
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model)
        except Exception:  # noqa: BLE001 - shape inference is a best effort; missing shapes are handled
            inferred = self.model
        self.shapes = {}
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        self.tensors = {}
        self.assignments = []      # (layer, weight name, source tensor, transform)
        self.attribute_constants = set()
        self._names = set()

    def name(self, node, suffix=""):
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name or "") or f"{node.op_type.lower()}"
        base = re.sub(r"^_+", "", base) or node.op_type.lower()
        if suffix:
            base = f"{base}_{suffix}"
        candidate, i = base, 1
        while candidate in self._names:
            candidate, i = f"{base}_{i}", i + 1
        self._names.add(candidate)
        return candidate

    def const(self, name, node):
        if name not in self.constants:
            raise Unsupported(f"input '{name}' must be an initializer or Constant")
        self.attribute_constants.add(name)
        return np.asarray(self.src.get_tensor(name))

    def tensor(self, name, node):
        if name in self.tensors:
            return self.tensors[name]
        if name in self.constants:
            raise Unsupported(f"input '{name}' is a constant where mwconv needs a graph tensor")
        raise InputRejected(f"node '{node.name}' ({node.op_type}) reads '{name}', which no graph input, initializer "
                            "or earlier node produces (malformed graph)", path=self.src.path)

    def weight(self, layer, weight_name, source_name, transform="none"):
        self.attribute_constants.discard(source_name)
        self.assignments.append((layer, weight_name, source_name, transform))

    def rank(self, name, node):
        t = self.tensors.get(name)
        if t is not None:
            return len(t.shape)
        raise Unsupported(f"rank of '{name}' is unknown")

    def to_last(self, x, node):
        from mwconv.layers.onnx_ops import OnnxTranspose
        r = len(x.shape)
        return OnnxTranspose(perm=[0] + list(range(2, r)) + [1], name=self.name(node, "to_nhwc"))(x)

    def to_first(self, x, node):
        from mwconv.layers.onnx_ops import OnnxTranspose
        r = len(x.shape)
        return OnnxTranspose(perm=[0, r - 1] + list(range(1, r - 1)), name=self.name(node, "to_nchw"))(x)

    def converter(self, op_type):
        if op_type in ACTIVATIONS:
            return self.op_activation
        return getattr(self, f"op_{op_type}", None)

    def build(self):
        """``(model, plan, attribute constants)``; every unsupported node is reported at once, first."""
        unsupported = {}
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx") or self.converter(node.op_type) is None:
                unsupported.setdefault(node.op_type, []).append(node.name or "(unnamed)")
        if unsupported:
            self._raise_unsupported(unsupported)
        self._check_order()
        inputs = self._inputs()
        self._convert_nodes()
        outputs = self._outputs(inputs)
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.graph.name or "onnx_model") or "onnx_model"
        model = self.keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=name)
        plan = [(f"{layer.name}/{weight}", source, transform) for layer, weight, source, transform in self.assignments]
        return model, plan, sorted(self.attribute_constants)

    def _check_order(self):
        """Every node reads graph inputs, initializers or outputs of earlier nodes: no cycle, no
        dangling edge (ONNX requires topological order)."""
        known = {vi.name for vi in self.graph.input} | set(self.constants) | {""}
        for node in self.graph.node:
            missing = [t for t in node.input if t not in known]
            if missing:
                raise InputRejected(f"node '{node.name or '(unnamed)'}' ({node.op_type}) reads '{missing[0]}', which "
                                    "no earlier node, graph input or initializer produces: the graph has a cycle or "
                                    "a dangling edge (malformed graph)", path=self.src.path, tensor=missing[0])
            known.update(node.output)

    def _inputs(self):
        """One keras.Input per graph input that is not an initializer, by (sanitised) name."""
        from onnx import helper

        from mwconv.layers.onnx_ops import OnnxTranspose

        inputs = {}
        for vi in self.graph.input:
            if vi.name in self.constants:
                continue
            dims = self.shapes.get(vi.name)
            if not dims:
                raise InputRejected(f"graph input '{vi.name}' has no shape (a batch axis first is needed)",
                                    path=self.src.path)
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)).name
            name = vi.name if re.fullmatch(r"[A-Za-z0-9_.\-]+", vi.name) else re.sub(r"[^A-Za-z0-9_]", "_", vi.name)
            rest = list(dims[1:])
            if self.channels_last and len(dims) >= 3:
                inp = self.keras.Input(shape=tuple(rest[1:] + rest[:1]), dtype=dtype, name=name)
                r = len(dims)
                self.tensors[vi.name] = OnnxTranspose(perm=[0, r - 1] + list(range(1, r - 1)),
                                                      name=f"{name}_to_nchw")(inp)
            else:
                inp = self.keras.Input(shape=tuple(rest), dtype=dtype, name=name)
                self.tensors[vi.name] = inp
            inputs[name] = inp
            self._names.add(name)
        return inputs

    def _convert_nodes(self):
        problems = {}
        for node in self.graph.node:
            try:
                out = self.converter(node.op_type)(node, attrs(node))
            except Unsupported as e:
                problems.setdefault(node.op_type, []).append(f"{node.name or '(unnamed)'}: {e}")
                continue
            except KeyError as e:
                raise InputRejected(f"node '{node.name}' ({node.op_type}) lacks the attribute {e} (malformed graph)",
                                    path=self.src.path) from e
            self.tensors[node.output[0]] = out
        if problems:
            self._raise_unsupported(problems, detail=True)

    def _outputs(self, inputs):
        from mwconv.layers.onnx_ops import OnnxTranspose

        outputs = []
        for vi in self.graph.output:
            if vi.name not in self.tensors or vi.name in inputs:
                raise InputRejected(f"graph output '{vi.name}' is not computed by any node (malformed graph or a "
                                    "constant output)", path=self.src.path)
            t = self.tensors[vi.name]
            if self.channels_last and len(t.shape) >= 3:
                r = len(t.shape)
                t = OnnxTranspose(perm=[0] + list(range(2, r)) + [1], name=self.name(vi, "nhwc"))(t)
            outputs.append(t)
        return outputs

    def _raise_unsupported(self, found, detail=False):
        listing = "; ".join(f"{op} ({shorten(names, 5)})" for op, names in sorted(found.items()))
        what = "unsupported operator uses" if detail else "unsupported operators"
        raise InputRejected(f"cannot rebuild this ONNX graph in Keras: {what}: {listing}. Pass --model (a Keras "
                            "model factory) with a rules file (--map) to import its initializers instead",
                            path=self.src.path, details={"unsupported": found, "supported": supported_ops()})


def supported_ops():
    """The ONNX operator types the builder converts (from the handlers themselves)."""
    ops = {name[len("op_"):] for name in dir(GraphBuilder) if name.startswith("op_") and name != "op_activation"}
    return sorted(ops | set(ACTIVATIONS))


def build_from_onnx(source, channels_last=False):
    """Return ``(model, plan, attribute_constants)``: the Keras model, the list of
    ``(target weight path, source tensor, transform)`` to fill it, and the
    constants consumed as attributes (shapes, pads)."""
    return GraphBuilder(source, channels_last).build()
