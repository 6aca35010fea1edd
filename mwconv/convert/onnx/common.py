"""What every ONNX op handler shares."""

ACTIVATIONS = {"Relu": (None, None), "LeakyRelu": (0.01, None), "Elu": (1.0, None),
               "Selu": (1.6732632423543772, 1.0507009873554805), "Sigmoid": (None, None), "Tanh": (None, None),
               "Softplus": (None, None), "Softsign": (None, None)}
MAX_PAD = -3.4e38   # padding value for MaxPool (a finite float32 lowest, JSON-safe)


class Unsupported(Exception):
    """This node cannot be converted; the message says why."""


def attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def ints(values):
    return [int(v) for v in values]
