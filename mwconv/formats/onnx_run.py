"""onnxruntime sessions of a source graph: as it is (verify's source check), or with
intermediate tensors added to its outputs (``mwconv compare``)."""

import numpy as np


def session(src, tensors):
    """An onnxruntime session of the graph; with ``tensors``, of a copy whose outputs include them
    (its weights read here, as everywhere, then handed over in memory)."""
    import onnx
    import onnxruntime as ort
    if not tensors:
        return ort.InferenceSession(src.path, providers=["CPUExecutionProvider"]), None
    from onnx import numpy_helper
    proto = onnx.ModelProto()
    proto.CopyFrom(src.model)
    lean = src.stored_apart()
    for t in proto.graph.initializer:
        if t.name in lean:
            t.CopyFrom(numpy_helper.from_array(np.asarray(src.get_tensor(t.name)), t.name))
    for node in proto.graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and node.output[0] in lean:
                attr.t.CopyFrom(numpy_helper.from_array(np.asarray(src.get_tensor(node.output[0]))))
    known = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in dict.fromkeys(tensors) if n not in known)
    if proto.ByteSize() >= (2 << 30) - (1 << 20):
        return None, "the graph with its weights is over 2 GiB, too large to run with its intermediate outputs"
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]), None


def run(src, inputs, tensors=None):
    """The graph in onnxruntime, when the probe fits its inputs (same names, fixed dims).
    A graph with a fixed batch size runs the probe in slices of that size. ``tensors``:
    names of intermediate tensors to return instead of the graph outputs (``mwconv compare``)."""
    sess, reason = session(src, tensors)
    if sess is None:
        return None, reason
    feed, batches = {}, set()
    for i in sess.get_inputs():
        if i.name not in inputs:
            return None, f"the source's input '{i.name}' is not among the artifact's inputs"
        arr = inputs[i.name]
        fixed = isinstance(i.shape[0], int) if i.shape else False
        if len(i.shape) != arr.ndim or any(isinstance(d, int) and d != s
                                           for d, s in list(zip(i.shape, arr.shape))[1 if fixed else 0:]):
            return None, f"the source's input '{i.name}' has shape {i.shape}, the probe {arr.shape} (other layout)"
        if fixed:
            batches.add((i.shape[0], arr.shape[0]))
        feed[i.name] = arr.astype(np.int64) if "int64" in i.type else arr
    step = batches.pop()[0] if len(batches) == 1 else None
    if step is None and batches:
        return None, "the source's inputs have fixed batch sizes that differ from the probe's"
    total = next(iter(feed.values())).shape[0] if feed else 0
    if step is None or step == total:
        return sess.run(tensors, feed), None
    if step < 1 or total % step:
        return None, f"the source's fixed batch of {step} does not divide the probe's {total} samples"
    parts = [sess.run(tensors, {k: v[j:j + step] for k, v in feed.items()}) for j in range(0, total, step)]
    try:
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))], None
    except ValueError:
        return None, "the source's outputs have no batch axis to join its fixed-batch runs along"
