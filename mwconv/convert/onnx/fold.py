"""Static folding: a node whose inputs are all known at import time (initializers,
``Constant`` nodes, static shapes, earlier folded values) is evaluated once with
onnx's reference implementation instead of becoming a Keras layer. This removes
the shape arithmetic that exporters emit around reshapes and attention."""

import numpy as np

from mwconv.convert.onnx.common import Unsupported

NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
              "If", "Loop", "Scan"}                   # control flow: inlined by its handler, or refused
GROWING = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot", "EyeLike"}
FOLD_LIMIT = 1 << 27          # elements a folded value may have (ops whose output size comes from values)


def foldable(node):
    return (node.domain or "ai.onnx") == "ai.onnx" and node.op_type not in NOT_FOLDED


def _output_sizes(model):
    """Element counts of the single node's outputs, from onnx's shape inference with the
    constant inputs' values (None where it cannot tell)."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - shape inference is a best effort here
        return []
    sizes = []
    for vi in inferred.graph.output:
        dims = vi.type.tensor_type.shape.dim if vi.type.tensor_type.HasField("shape") else None
        sizes.append(None if dims is None or any(not d.HasField("dim_value") for d in dims)
                     else int(np.prod([d.dim_value for d in dims], dtype=object)))
    return sizes


class Folder:
    """Evaluates single nodes at the model's own opset."""

    def __init__(self, model):
        self.opsets = list(model.opset_import)
        self.ir_version = model.ir_version

    def run(self, node, values):
        """The node's outputs, given ``values`` (one array, or None, per input)."""
        from onnx import TensorProto, helper
        from onnx.reference import ReferenceEvaluator

        inputs, feeds = [], {}
        for name, value in zip(node.input, values):
            if name and name not in feeds:
                inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                                            value.shape))
                feeds[name] = value
        outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output if o]
        graph = helper.make_graph([node], "fold", inputs, outputs)
        model = helper.make_model(graph, opset_imports=self.opsets)
        model.ir_version = self.ir_version
        if node.op_type in GROWING:
            self._check_size(node, model, feeds)
        try:
            results = ReferenceEvaluator(model).run(None, feeds)
        except MemoryError as e:
            raise Unsupported("its constant output does not fit in memory") from e
        except Exception as e:  # noqa: BLE001 - onnx's evaluator raises many types on a bad node
            raise Unsupported(f"evaluating it on its constant inputs failed ({type(e).__name__}: {e})") from e
        return [np.asarray(r) for r in results]

    @staticmethod
    def _check_size(node, model, feeds):
        """Refuse a fold whose output (sized by its input values) would be huge, before computing it."""
        from onnx import numpy_helper
        probe = type(model)()
        probe.CopyFrom(model)
        probe.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in feeds.items())
        big = [size for size in _output_sizes(probe) if size is not None and size > FOLD_LIMIT]
        if big:             # sizes shape inference cannot tell are left to MemoryError
            raise Unsupported(f"its constant output would have {max(big)} elements (more than {FOLD_LIMIT})")


def inferred_shapes(model):
    """Static sizes of the graph's tensors by onnx's shape inference (None where unknown)."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shape inference is a best effort; missing shapes are handled
        inferred = model
    shapes = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return shapes
