"""tf2onnx, called the way mwconv's ONNX export needs it: the extra handlers it lacks,
and its failures as one-line refusals."""

import numpy as np


def _unsupported_ops(proto):
    import onnx
    return sorted({n.op_type for n in proto.graph.node
                   if (n.domain or "ai.onnx") == "ai.onnx" and not onnx.defs.has(n.op_type)})


_EXTRA_HANDLERS = []


def _register_handlers():
    """TensorFlow ops tf2onnx lacks, written with ONNX ops: Erfc (Keras's exact GELU) as 1 - Erf."""
    if _EXTRA_HANDLERS:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            node.type = "Erf"
            one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, dtype=dtype))
            sub = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(node.name))
            ctx.replace_inputs(sub, [one.output[0], node.output[0]])

    _EXTRA_HANDLERS.append(Erfc)


def convert_function(tf2onnx, fn, signature, opset, target):
    """The ONNX proto of a TensorFlow function, or a one-line refusal naming what tf2onnx lacks."""
    _register_handlers()
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    except (ValueError, TypeError, RuntimeError, KeyError, NotImplementedError, AttributeError) as e:
        from mwconv.errors import InputRejected
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputRejected(f"tf2onnx cannot convert this model ({type(e).__name__}: {first})", path=target) from e
    unsupported = _unsupported_ops(proto)
    if unsupported:
        from mwconv.errors import InputRejected
        hint = ("; PartitionedCall is a grouped convolution (groups > 1), which Keras runs as an XLA-compiled "
                "function that tf2onnx cannot read" if "PartitionedCall" in unsupported else "")
        raise InputRejected(f"tf2onnx cannot convert the TensorFlow ops {', '.join(unsupported)} to ONNX opset "
                            f"{opset}{hint}; nothing was written", path=target)
    return proto
