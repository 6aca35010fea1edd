"""What every ONNX op handler shares."""

ACTIVATIONS = {"Relu": (None, None), "LeakyRelu": (0.01, None), "Elu": (1.0, None),
               "Selu": (1.6732632423543772, 1.0507009873554805), "Sigmoid": (None, None), "Tanh": (None, None),
               "Softplus": (None, None), "Softsign": (None, None), "HardSigmoid": (0.2, 0.5),
               "HardSwish": (None, None)}
MAX_PAD = -3.4e38   # padding value for MaxPool (a finite float32 lowest, JSON-safe)
BIG = 1 << 31       # Slice bounds at or beyond this mean "to the end"


class Unsupported(Exception):
    """This node cannot be converted; the message says why."""


class NeedsFixedBatch(Exception):
    """This node reads, moves or reshapes the batch axis: the Keras model must keep
    the ONNX model's own (fixed) batch size. The builder then starts again with it."""

    def __init__(self, node, why):
        super().__init__(f"node '{node.name or '(unnamed)'}' ({node.op_type}) {why}")
        self.node, self.why = node, why


def attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def ints(values):
    return [int(v) for v in values]


def axis(value, rank):
    value = int(value)
    if not -rank <= value < rank:
        raise Unsupported(f"axis {value} is out of range for rank {rank}")
    return value + rank if value < 0 else value


def given(node, index):
    """The node's input ``index`` when present (optional inputs may be empty or missing)."""
    return node.input[index] if len(node.input) > index and node.input[index] else None
