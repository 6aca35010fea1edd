"""The two sides of a comparison, paired tensor by tensor.

A source side knows, in its graph order, which of its tensors each Keras layer of the
imported model computes (a ``Pair``), and runs the source to get them:

- ``OnnxSide``: the graph is rebuilt the way ``mwconv import`` rebuilt it, which says
  which Keras layer computes each node's output; onnxruntime then runs a copy of the graph
  whose outputs include those tensors;
- ``KerasSide``: a tf-keras model (rebuilt in tf-keras's safe mode from the audited
  config, no code from the file) or a Keras 3 one (``.keras``, safe mode), paired with the
  imported model's layers by name (a tf-keras name with ``/`` became ``_``).

``model_tensors`` computes the paired tensors of the imported model itself.
"""

import dataclasses

import numpy as np

from mwconv import _compat, modelio
from mwconv.errors import InputRejected


@dataclasses.dataclass
class Pair:
    source: str            # the ONNX node, or the source's layer
    op: str                # the ONNX op type, or the source layer's class
    tensor: str            # the source tensor (an ONNX tensor name, or "layer:index")
    layer: str             # the imported model's layer that computes the paired tensor
    node_index: int
    tensor_index: int
    inputs: list           # source tensors feeding it
    built: list            # the Keras layers built from the source node

    @property
    def keras_layer(self):
        """The layer to name: the one built for the node itself (whose name the helpers around
        it extend: ``_to_nhwc``, ``_pad``, ``_constant``), else the one computing the tensor."""
        own = [b for b in self.built if all(other.startswith(b) for other in self.built)]
        return own[0] if own else self.layer


class OnnxSide:
    kind = "onnx"
    comparison = "source"         # tolerances of the source check: another runtime

    def __init__(self, src, model):
        from mwconv.convert.onnx.graph import built_graph
        self.src = src
        wanted = [tuple(shape[1:]) for _, shape, _ in modelio.input_specs(model)]
        builder = None
        for channels_last in (False, True):
            builder = built_graph(src, channels_last)
            built = builder.result[0]
            if [tuple(shape[1:]) for _, shape, _ in modelio.input_specs(built)] == wanted:
                break
        self.pairs, self.aliases = _onnx_pairs(builder)
        self.inputs = [vi.name for vi in src.model.graph.input if vi.name not in builder.constants]
        self.notes = []
        del builder, built
        modelio.release_memory()

    def run(self, probe, names):
        """The paired tensors on ``probe`` (keyed by the imported model's input names, in order)."""
        feed = dict(zip(self.inputs, probe.values()))
        arrays, reason = self.src.run_model(feed, [p.tensor for p in self.pairs])
        if arrays is None:
            raise InputRejected(f"onnxruntime cannot run the source with its intermediate outputs: {reason}",
                                path=self.src.path)
        return arrays


def _onnx_pairs(builder):
    pairs, seen, aliases = [], {}, {}
    for position, node in enumerate(builder.graph.node):
        if position not in builder.node_layers:
            continue                                  # folded to a constant at import
        for name in node.output:
            history = _compat.tensor_history(builder.tensors.get(name))
            if history is None:
                continue
            layer, node_index, tensor_index = history
            key = (layer.name, node_index, tensor_index)
            if key in seen:                           # an Identity passes on a tensor paired already
                aliases[name] = seen[key]
                continue
            seen[key] = name
            pairs.append(Pair(node.name or name, node.op_type, name, layer.name, node_index, tensor_index,
                              [i for i in node.input if i], list(builder.node_layers[position])))
    return pairs, aliases


class KerasSide:
    """A tf-keras (``tf_keras=True``) or Keras 3 source model, paired by layer name."""

    def __init__(self, source_model, model, path, tf_keras):
        from mwconv.legacy.translate import keras3_name
        self.kind = "tf-keras" if tf_keras else "keras"
        self.comparison = "source" if tf_keras else "exact"    # Keras 3 against Keras 3: the same kernels
        self.path = path
        node_tensors = _compat.tf_keras_node_tensors if tf_keras else _compat.node_tensors
        history = _compat.tf_keras_history if tf_keras else _compat.tensor_history
        names = {layer.name for layer in model.layers}
        self.pairs, self.aliases, tensors = [], {}, []
        for layer in source_model.layers:
            target = layer.name if layer.name in names else keras3_name(layer.name)
            if type(layer).__name__ == "InputLayer" or target not in names:
                continue
            ins, outs = node_tensors(layer, 0)
            feeding = [f"{h[0].name}:{h[2]}" for h in map(history, ins) if h is not None]
            for index, tensor in enumerate(outs):
                self.pairs.append(Pair(layer.name, type(layer).__name__, f"{layer.name}:{index}", target, 0, index,
                                       feeding, [target]))
                tensors.append(tensor)
        api = _tf_keras() if tf_keras else modelio.keras_api()
        self.input_names = [t.name.split(":")[0] for t in source_model.inputs]
        self.model = api.Model(source_model.inputs, tensors) if tensors else None
        self.notes = []

    def run(self, probe, names):
        if self.model is None:
            return []
        feed = list(probe.values())
        out = self.model(feed if len(feed) > 1 else feed[0], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o) for o in out]


def _tf_keras():
    from mwconv._quiet import import_quietly
    return import_quietly("tf_keras")


def model_tensors(model, pairs, probe):
    """The imported model's tensors paired with ``pairs`` on ``probe`` (None where the model has
    no such layer or call), computed in one run of a model with every paired tensor as output."""
    keras = modelio.keras_api()
    layers = {layer.name: layer for layer in model.layers}
    wanted = []
    for p in pairs:
        layer = layers.get(p.layer)
        outs = _compat.node_tensors(layer, p.node_index)[1] if layer is not None else []
        wanted.append(outs[p.tensor_index] if p.tensor_index < len(outs) else None)
    present = [t for t in wanted if t is not None]
    if not present:
        return [None] * len(pairs)
    struct = _compat.inputs_struct(model)
    probe_model = keras.Model(model.inputs if struct is None else struct, present)
    arrays = iter(modelio.call_model(probe_model, probe))
    return [next(arrays) if t is not None else None for t in wanted]
