"""An ONNX model parsed without its large embedded tensors.

``onnx.load`` keeps every initializer's ``raw_data`` in memory: one copy of the
weights before anything is converted, and shape inference serialises the model
again. ``lean_load`` walks protobuf's wire format over a memory map instead
(ModelProto.graph is field 7, GraphProto.initializer field 5, TensorProto.raw_data
field 9), parses everything but the ``raw_data`` of initializers of at least
``min_bytes``, and returns where those bytes lie in the file, to be read one tensor
at a time. Small initializers (shape constants that shape inference reads) keep
their data.
"""

import mmap

_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_RAW_DATA = 7, 5, 9


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf, pos, end):
    shift = result = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start, end):
    """``(field number, wire type, key offset, payload start, payload end)`` of each field."""
    pos = start
    while pos < end:
        key_at = pos
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos, end)
            payload = (pos, pos)
        elif wire == 1:
            payload, pos = (pos, pos + 8), pos + 8
        elif wire == 5:
            payload, pos = (pos, pos + 4), pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            payload, pos = (pos, pos + length), pos + length
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end or field == 0:
            raise WireError("field runs past its message")
        yield field, wire, key_at, payload[0], payload[1] if wire == 2 else pos


def _tensor(onnx, buf, start, end, min_bytes):
    """(TensorProto without a large raw_data, (offset, length) of that raw_data or None)."""
    kept, raw = bytearray(), None
    for field, wire, key_at, begin, stop in _fields(buf, start, end):
        if field == _TENSOR_RAW_DATA and wire == 2 and stop - begin >= min_bytes:
            raw = (begin, stop - begin)
        else:
            kept += buf[key_at:stop]
    return onnx.TensorProto.FromString(bytes(kept)), raw


def lean_load(path, min_bytes=1 << 20):
    """``(ModelProto, {initializer name: (offset, length)})`` for the initializers whose raw
    bytes stayed in the file. Raises WireError (or protobuf's DecodeError) on malformed bytes."""
    import onnx

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        size = len(buf)
        top, graph_parts, initializers = bytearray(), bytearray(), []
        for field, wire, key_at, begin, stop in _fields(buf, 0, size):
            if field != _MODEL_GRAPH or wire != 2:
                top += buf[key_at:stop]
                continue
            for g_field, g_wire, g_key, g_begin, g_stop in _fields(buf, begin, stop):
                if g_field == _GRAPH_INITIALIZER and g_wire == 2:
                    initializers.append(_tensor(onnx, buf, g_begin, g_stop, min_bytes))
                else:
                    graph_parts += buf[g_key:g_stop]
        model = onnx.ModelProto.FromString(bytes(top))
        if graph_parts or initializers:
            graph = onnx.GraphProto.FromString(bytes(graph_parts))
            ranges = {}
            for tensor, raw in initializers:
                graph.initializer.append(tensor)
                if raw is not None:
                    ranges[tensor.name] = raw
            model.graph.CopyFrom(graph)
            return model, ranges
    return model, {}
