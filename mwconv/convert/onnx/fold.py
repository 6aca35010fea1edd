"""Static folding: a node whose inputs are all known at import time (initializers,
``Constant`` nodes, static shapes, earlier folded values) is evaluated once with
onnx's reference implementation instead of becoming a Keras layer. This removes
the shape arithmetic that exporters emit around reshapes and attention."""

import numpy as np

from mwconv.convert.onnx.common import Unsupported

NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
GROWING = {"ConstantOfShape", "Expand", "Tile", "Range"}     # output size set by input values
FOLD_LIMIT = 1 << 27                                          # elements a folded value may have


def foldable(node):
    return (node.domain or "ai.onnx") == "ai.onnx" and node.op_type not in NOT_FOLDED


def _expected_size(node, values):
    """A cheap upper bound on the output size of ops whose size comes from values."""
    op = node.op_type
    try:
        if op == "ConstantOfShape":
            return int(np.prod([int(v) for v in values[0].ravel()], dtype=object))
        if op == "Expand":
            shape = np.broadcast_shapes(values[0].shape, tuple(int(v) for v in values[1].ravel()))
            return int(np.prod(shape, dtype=object))
        if op == "Tile":
            return int(np.prod([d * int(r) for d, r in zip(values[0].shape, values[1].ravel())], dtype=object))
        if op == "Range":
            start, limit, delta = (float(v) for v in values[:3])
            return int(abs((limit - start) / delta)) + 1 if delta else FOLD_LIMIT + 1
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        return FOLD_LIMIT + 1
    return 0


class Folder:
    """Evaluates single nodes at the model's own opset."""

    def __init__(self, model):
        self.opsets = list(model.opset_import)
        self.ir_version = model.ir_version

    def run(self, node, values):
        """The node's outputs, given ``values`` (one array, or None, per input)."""
        from onnx import TensorProto, helper
        from onnx.reference import ReferenceEvaluator

        if node.op_type in GROWING and _expected_size(node, values) > FOLD_LIMIT:
            raise Unsupported(f"its constant output would have more than {FOLD_LIMIT} elements")
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
        try:
            results = ReferenceEvaluator(model).run(None, feeds)
        except MemoryError as e:
            raise Unsupported("its constant output does not fit in memory") from e
        except Exception as e:  # noqa: BLE001 - onnx's evaluator raises many types on a bad node
            raise Unsupported(f"evaluating it on its constant inputs failed ({type(e).__name__}: {e})") from e
        return [np.asarray(r) for r in results]
