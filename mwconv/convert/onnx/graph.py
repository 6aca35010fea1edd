"""Build a Keras functional model from an ONNX graph, for ``mwconv import
model.onnx`` without ``--model``.

Weight-bearing operators become (mixed) Keras layers filled from the initializers; the
others small registered layers (``mwconv.layers.onnx_ops``). Nodes whose inputs are known at
import time are folded (``fold.py``); sizes known only at run time, ``dynamic.py``. The model takes and returns
tensors in the ONNX model's own layout (NCHW stays NCHW: convolutions and
pools run channels-last between two transposes, since TensorFlow's CPU kernels
are channels-last only); ``channels_last=True`` gives an NHWC model instead.

The batch axis stays free (any batch size) unless a node reads, moves or
reshapes it (attention blocks, channel shuffles, class tokens); the model then
keeps the ONNX graph's own fixed batch size. Handlers live in the registry
(``registry.py``), one family module each.
"""

import re

import numpy as np

from mwconv.convert.onnx import registry
from mwconv.convert.onnx import dynamic as dyn
from mwconv.convert.onnx.common import NeedsFixedBatch, Unsupported, attrs
from mwconv.convert.onnx.fold import Folder, foldable, inferred_shapes
from mwconv.errors import InputRejected, shorten

BATCH_SENTINEL = 1      # the batch size a dynamic-batch graph's folded shapes assume
BATCH_DEPENDENT = {"Expand", "Tile", "ConstantOfShape", "Range"}   # not folded when their inputs hang on the batch


class GraphBuilder(dyn.RunTimeValues):
    """Walks the graph once, in order, keeping a Keras tensor per ONNX tensor name."""

    def __init__(self, source, channels_last=False, fixed_batch=False):
        from mwconv.modelio import keras_api
        self.keras = keras_api()
        self.src = source
        self.model = source.model
        self.graph = self.model.graph
        self.channels_last = channels_last
        self.fixed = fixed_batch
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.constants = set(source.keys())
        self.shapes = inferred_shapes(self.model)
        self.onnx_batch = self._graph_batch()
        self.folder = Folder(self.model)
        self.tensors = {}
        self.alt = {}                  # folded values that depend on the free batch size: their value at batch + 1
        self.dynamic = {}              # values known only at run time (dynamic axes): name -> dyn.Dynamic
        self.producer = {}             # name of a run-time value -> the node that computes it
        self.dynamic_axes = self._has_dynamic_axes()
        self.sentinels = (self.onnx_batch or BATCH_SENTINEL, (self.onnx_batch or BATCH_SENTINEL) + 1)
        self.assignments = []          # (layer, weight name, source tensor, transform)
        self.attribute_constants = set()
        self._names = set()
        self._created = []             # layer names in the order handlers created them
        self.node_layers = {}          # position of a converted node -> the names of the Keras layers built for it
        self.result = None             # (model, plan, attribute constants) once built

    # -- what handlers use -------------------------------------------------------------
    def name(self, node, suffix=""):
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name or "") or f"{node.op_type.lower()}"
        base = re.sub(r"^_+", "", base) or node.op_type.lower()
        if suffix:
            base = f"{base}_{suffix}"
        candidate, i = base, 1
        while candidate in self._names:
            candidate, i = f"{base}_{i}", i + 1
        self._names.add(candidate)
        self._created.append(candidate)
        return candidate

    def is_const(self, name):
        return name in self.constants

    def const(self, name, node, batch_ok=False):
        """The value of a constant input, consumed at import time (a shape, pads, an index)."""
        if name in self.dynamic:
            raise dyn.DynamicInput(name)
        if name not in self.constants:
            raise Unsupported(f"input '{name}' must be an initializer or Constant")
        if name in self.alt and not batch_ok:
            raise NeedsFixedBatch(node, f"uses the batch size (through '{name}')")
        self.attribute_constants.add(name)
        return np.asarray(self.src.get_tensor(name))

    def const_info(self, name):
        return self.src.info(name)

    def tensor(self, name, node):
        if name in self.tensors:
            return self.tensors[name]
        if name in self.dynamic:
            return self.materialize(name, node)
        if name in self.constants:
            raise Unsupported(f"input '{name}' is a constant where mwconv needs a graph tensor")
        raise InputRejected(f"node '{node.name}' ({node.op_type}) reads '{name}', which no graph input, initializer "
                            "or earlier node produces (malformed graph)", path=self.src.path)

    def operand(self, name, node, other_rank=None):
        """A graph tensor, or a constant placed in the graph as a frozen weight."""
        if name not in self.constants:
            return self.tensor(name, node)
        from mwconv.layers.onnx_ops import OnnxConstant
        info = self.const_info(name)
        if not self.fixed and not (other_rank is not None and (len(info.shape) < other_rank or
                                                                (info.shape and info.shape[0] == 1))):
            raise NeedsFixedBatch(node, f"combines the constant '{name}' with the batch axis")
        anchor = self.batch_reference()
        layer = OnnxConstant(constant_shape=list(info.shape), constant_dtype=np.dtype(info.dtype).name,
                             name=self.name(node, "constant"))
        out = layer(anchor)
        self.weight(layer, "constant", name)
        return out

    def batch_reference(self):
        """A graph input, whose first axis is the batch (for shapes built from it at run time)."""
        return next(iter(self.tensors.values()))

    def weight(self, layer, weight_name, source_name, transform="none"):
        self.attribute_constants.discard(source_name)
        self.assignments.append((layer, weight_name, source_name, transform))

    def rank(self, name, node):
        if name in self.dynamic and name not in self.tensors:
            value = self.dynamic[name].value
            return value.ndim if value is not None else len(self.materialize(name, node).shape)
        t = self.tensors.get(name)
        if t is not None:
            return len(t.shape)
        if name in self.constants:
            return len(self.const_info(name).shape)
        raise Unsupported(f"rank of '{name}' is unknown")

    def batch_axis(self, axes, node, what):
        """Refuse (for now) ``what`` on the batch axis of a fixed-batch graph while the Keras
        batch is free. A dynamic-batch graph is exported for any batch: nothing to check."""
        if not self.fixed and self.onnx_batch is not None and 0 in axes:
            raise NeedsFixedBatch(node, what)

    def batch_values(self, name):
        """``(value, value at batch + 1)`` of a constant that depends on the free batch size, else None."""
        if name not in self.alt:
            return None
        return np.asarray(self.src.get_tensor(name)), self.alt[name]

    def to_last(self, x, node):
        from mwconv.layers.onnx_ops import OnnxTranspose
        r = len(x.shape)
        return OnnxTranspose(perm=[0] + list(range(2, r)) + [1], name=self.name(node, "to_nhwc"))(x)

    def to_first(self, x, node):
        from mwconv.layers.onnx_ops import OnnxTranspose
        r = len(x.shape)
        return OnnxTranspose(perm=[0, r - 1] + list(range(1, r - 1)), name=self.name(node, "to_nchw"))(x)

    # -- building ----------------------------------------------------------------------
    def build(self):
        """``(model, plan, attribute constants)``; every unsupported node is reported at once, first."""
        self._check_order()
        self._scan()
        inputs = self._inputs()
        self._convert_nodes()
        outputs = self._outputs(inputs)
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.graph.name or "onnx_model") or "onnx_model"
        single = list(inputs.values())[0] if len(inputs) == 1 else inputs   # callable with one array
        model = self.keras.Model(single, outputs[0] if len(outputs) == 1 else outputs, name=name)
        plan = [(f"{layer.name}/{weight}", source, transform) for layer, weight, source, transform in self.assignments]
        self.result = (model, plan, sorted(self.attribute_constants))
        return self.result

    def _graph_batch(self):
        """The graph inputs' common fixed batch size, or None (dynamic or differing)."""
        sizes = self._input_batches()
        return sizes.pop() if len(sizes) == 1 and None not in sizes else None

    def _input_batches(self):
        return {(self.shapes.get(vi.name) or (None,))[0] for vi in self.graph.input if vi.name not in self.constants}

    def batch_is_dynamic(self):
        """True when a graph input has a symbolic first axis (the graph is exported for any batch size)."""
        return None in self._input_batches()

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

    def _scan(self):
        """Report every node that is neither foldable nor convertible, before building anything."""
        known = set(self.constants)
        unsupported = {}
        for node in self.graph.node:
            present = [i for i in node.input if i]
            if foldable(node) and (node.op_type in ("Constant", "Shape", "Size") or
                                   (present and all(i in known for i in present))):
                known.update(node.output)
                continue
            h = registry.handler(node.op_type)
            if (node.domain or "ai.onnx") != "ai.onnx" or h is None:
                unsupported.setdefault(node.op_type, []).append(node.name or "(unnamed)")
        if unsupported:
            self._raise_unsupported(unsupported)

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
            batch, rest = (dims[0] if self.fixed else None), list(dims[1:])
            r = len(dims)
            if self.channels_last and r >= 3:
                inp = self.keras.Input(batch_shape=(batch, *rest[1:], rest[0]), dtype=dtype, name=name)
                self.tensors[vi.name] = OnnxTranspose(perm=[0, r - 1] + list(range(1, r - 1)),
                                                      name=f"{name}_to_nchw")(inp)
            else:
                inp = self.keras.Input(batch_shape=(batch, *rest), dtype=dtype, name=name)
                self.tensors[vi.name] = inp
            inputs[name] = inp
            self._names.add(name)
        return inputs

    def _convert_nodes(self):
        problems, failed = {}, set()
        for position, node in enumerate(self.graph.node):
            if any(i in failed for i in node.input):
                failed.update(node.output)      # downstream of a reported node: not reported again
                continue
            try:
                start = len(self._created)
                if self.convert_node(node):
                    self.node_layers[position] = self._created[start:]
            except Unsupported as e:
                problems.setdefault(node.op_type, []).append(f"{node.name or '(unnamed)'}: {e}")
                failed.update(node.output)
            except KeyError as e:
                raise InputRejected(f"node '{node.name}' ({node.op_type}) lacks the attribute {e} (malformed graph)",
                                    path=self.src.path) from e
        if problems:
            self._raise_unsupported(problems, detail=True)

    def convert_node(self, node):
        """Fold ``node`` or build its layers (its outputs then known); True when layers were built."""
        if self._fold(node):
            return False
        h = registry.handler(node.op_type)
        if h is None:            # foldable in the scan, but its inputs hang on the batch size or a run-time size
            raise Unsupported(f"computes a value from a size known only at run time, which mwconv computes at run "
                              f"time for {', '.join(sorted(dyn.RUNTIME_OPS))} only" if any(
                                  i in self.dynamic for i in node.input) else
                              "computes a constant from the batch size; export the model with a fixed batch size")
        held = len(self.assignments)
        try:
            out = h.fn(self, node, attrs(node))
        except dyn.DynamicInput:
            if node.op_type not in dyn.RUNTIME_OPS:
                raise
            del self.assignments[held:]        # what the handler began is not part of the model
            out = self._runtime_node(node)
        for name, tensor in zip(node.output, out if isinstance(out, (list, tuple)) else [out]):
            if name and tensor is not None:    # None: an output the handler stored as a constant
                self.tensors[name] = tensor
        return True

    def _fold(self, node):
        """Evaluate the node now when its inputs are known; True when it was."""
        if not foldable(node):
            return False
        present = [i for i in node.input if i]
        if node.op_type in ("Shape", "Size") and present and present[0] in self.tensors:
            dims = list(self.tensors[present[0]].shape)
            free = sum(d is None for d in dims)
            if free and (self.dynamic_axes or self.fixed or free > 1):
                value, taint = dyn.shape_taint(dims, node, attrs(node))
                self._store_dynamic(node, [value], [taint])
            else:
                self._store(node, *self._shape_values(node, present[0]))
            return True
        if not all(i in self.constants or i in self.dynamic for i in present) or (
                not present and node.op_type != "Constant"):
            return False
        if any(i in self.dynamic for i in present):
            if node.op_type not in dyn.RUNTIME_OPS:
                return False             # its handler takes the run-time values as tensors
            self._fold_dynamic(node)
            return True
        if node.op_type == "Constant" and node.output[0] in self.constants:
            return True
        if node.op_type in BATCH_DEPENDENT and any(i in self.alt for i in present):
            return False                 # the handler broadcasts to the runtime batch instead
        values = [np.asarray(self.src.get_tensor(i)) if i else None for i in node.input]
        self.attribute_constants.update(present)
        first = self.folder.run(node, values)
        second = None
        if any(i in self.alt for i in present):
            second = self.folder.run(node, [self.alt.get(i, v) if i else None for i, v in zip(node.input, values)])
        self._store(node, first, second)
        return True

    def _shape_values(self, node, name):
        """Shape/Size of a graph tensor, at the free batch size's two sentinel values."""
        dims = list(self.tensors[name].shape)
        free = [i for i, d in enumerate(dims) if d is None]
        if len(free) > 1 or (free and self.fixed):
            raise Unsupported(f"the shape of '{name}' is not static ({tuple(dims)})")
        values = []
        for sentinel in self.sentinels:
            shape = np.asarray([sentinel if d is None else d for d in dims], dtype=np.int64)
            if node.op_type == "Size":
                values.append([np.asarray(np.prod(shape), dtype=np.int64)])
            else:
                a = attrs(node)
                end = a.get("end")
                values.append([shape[int(a.get("start", 0)):None if end is None else int(end)]])
        return values[0], (values[1] if free else None)

    def _store(self, node, values, alternates=None):
        for i, (name, value) in enumerate(zip(node.output, values)):
            if name:
                self.src.add_derived(name, value)
                self.constants.add(name)
                self.attribute_constants.add(name)
                if alternates is not None and not np.array_equal(alternates[i], value):
                    self.alt[name] = alternates[i]

    def _outputs(self, inputs):
        from mwconv.layers.onnx_ops import OnnxTranspose

        outputs = []
        for vi in self.graph.output:
            if vi.name in self.dynamic and vi.name not in self.tensors:
                self.materialize(vi.name, vi)
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
    """The ONNX operator types the builder converts (from the registry)."""
    return registry.supported_ops()


def build_from_onnx(source, channels_last=False):
    """Return ``(model, plan, attribute_constants)``: the Keras model, the list of
    ``(target weight path, source tensor, transform)`` to fill it, and the
    constants consumed as attributes (shapes, pads). The batch axis stays free
    unless the graph needs its own fixed batch size (see the module's doc)."""
    return built_graph(source, channels_last).result


def built_graph(source, channels_last=False):
    """The GraphBuilder that rebuilt the graph: ``result`` as ``build_from_onnx`` returns it,
    ``tensors`` (ONNX tensor name -> Keras tensor) and ``node_layers`` (what each node became),
    which ``mwconv compare`` pairs with onnxruntime's intermediate outputs."""
    first = GraphBuilder(source, channels_last)
    if first.onnx_batch is None and not first.batch_is_dynamic():     # inputs of different fixed batch sizes
        builder = GraphBuilder(source, channels_last, fixed_batch=True)
        builder.build()
        return builder
    try:
        first.build()
        return first
    except NeedsFixedBatch as e:
        builder = GraphBuilder(source, channels_last, fixed_batch=True)
        if builder.batch_is_dynamic():
            raise InputRejected(f"cannot rebuild this ONNX graph in Keras: {e} and the graph's batch size is "
                                "dynamic; export it with a fixed batch size", path=source.path) from e
        builder.build()
        return builder
