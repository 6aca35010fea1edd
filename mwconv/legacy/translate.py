"""Walk a tf.keras 2.x model config and rewrite what Keras 3 refuses."""

import copy
import dataclasses
import inspect

from mwconv.errors import InputRejected
from mwconv.legacy.arguments import filter_arguments
from mwconv.legacy.semantics import INFERENCE_IDENTITY, REFUSED, REPLACED, translate_values

MODEL_CLASSES = ("Functional", "Model", "Sequential")
OP_CLASSES = ("TFOpLambda", "SlicingOpLambda")
_FUNCTIONAL = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional"}
MODEL_MODULES = {"Functional": _FUNCTIONAL, "Model": _FUNCTIONAL,
                 "Sequential": {"module": "keras", "class_name": "Sequential", "registered_name": None}}


@dataclasses.dataclass
class Translation:
    """A Keras 3 config and what the translation changed."""

    config: dict
    renamed: dict = dataclasses.field(default_factory=dict)   # Keras 3 layer name -> the file's name
    dropped: dict = dataclasses.field(default_factory=dict)   # layer name -> arguments dropped
    ops: list = dataclasses.field(default_factory=list)       # TF ops translated into keras.ops
    meanings: dict = dataclasses.field(default_factory=dict)  # layer name -> values rewritten to keep their numbers

    def notes(self):
        lines = []
        if self.renamed:
            lines.append(f"{len(self.renamed)} layers renamed ('/' is not allowed in Keras 3 names)")
        if self.dropped:
            names = sorted({a for args in self.dropped.values() for a in args})
            lines.append(f"arguments Keras 3 lacks, dropped (defaults or training-only): {', '.join(names)}")
        if self.ops:
            lines.append(f"TF ops translated: {', '.join(sorted(set(self.ops)))}")
        if self.meanings:
            changes = sorted({c for cs in self.meanings.values() for c in cs})
            lines.append(f"{len(self.meanings)} layers translated to keep tf-keras's numbers: {', '.join(changes)}")
        return lines


def keras3_name(name):
    """The name Keras 3 gives a layer the file names ``name`` ('/' is refused there)."""
    return name.replace("/", "_")


def _is_ref(value):
    return isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str) \
        and all(isinstance(v, int) for v in value[1:3])


def _keras():
    from mwconv._quiet import import_quietly
    return import_quietly("keras")


class _Translator:
    def __init__(self, path):
        self.path = path
        self.result = None

    def model(self, entry):
        cfg = entry.get("config")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
            raise InputRejected(f"the nested model '{entry.get('name')}' has no layer list (corrupt config)",
                                path=self.path)
        entry.update(MODEL_MODULES[entry["class_name"]])
        if entry["class_name"] == "Sequential":
            local = self._names(cfg["layers"])
            for layer in cfg["layers"]:
                self._rename(layer, local)
                self.layer(layer)
        else:
            self._functional(cfg)
        return entry

    # -- names -------------------------------------------------------------
    def _names(self, layers):
        taken = {self._name(layer) for layer in layers}
        local = {}
        for layer in layers:
            old = self._name(layer)
            if isinstance(old, str) and "/" in old:
                new, i = keras3_name(old), 1
                while new in taken:
                    new, i = f"{keras3_name(old)}_{i}", i + 1
                taken.add(new)
                local[old] = new
                self.result.renamed[new] = old
        return local

    @staticmethod
    def _name(layer):
        return layer.get("config", {}).get("name", layer.get("name"))

    def _rename(self, layer, local):
        old = self._name(layer)
        new = local.get(old, old)
        layer.setdefault("config", {})["name"] = new
        if "name" in layer:
            layer["name"] = new

    # -- functional graphs -------------------------------------------------
    def _functional(self, cfg):
        layers = cfg["layers"]
        local = self._names(layers)
        # tf-keras numbers the calls of a nested model built on its own Input from 1 (that
        # Input made node 0); Keras 3 shifts only a Functional's model outputs itself
        nested = {self._name(layer): layer.get("class_name") for layer in layers
                  if layer.get("class_name") in MODEL_CLASSES
                  and (layer.get("config", {}).get("layers") or [{}])[0].get("class_name") == "InputLayer"}

        def ref(value, outputs=False):
            name, node, tensor = value[0], value[1], value[2]
            shift = name in nested and node > 0 and not (outputs and nested[name] != "Sequential")
            return [local.get(name, name), node - 1 if shift else node, tensor] + value[3:]

        for layer in layers:
            self._rename(layer, local)
            nodes = [[n] if _is_ref(n) else n for n in layer.get("inbound_nodes") or []]
            nodes = [[ref(e) if _is_ref(e) else e for e in node] for node in nodes]
            for node in nodes:
                for e in node:
                    if len(e) == 4 and isinstance(e[3], dict):
                        e[3] = _map_refs(e[3], lambda v: ref(v)[:3])
            if layer.get("class_name") not in OP_CLASSES:
                nodes = [_with_tensor_kwargs(node) for node in nodes]
            layer["inbound_nodes"] = nodes
            if layer.get("class_name") in OP_CLASSES:
                self._op(layer)
            else:
                self.layer(layer)
        for key in ("input_layers", "output_layers"):
            cfg[key] = _map_refs(cfg.get(key), lambda v: ref(v, outputs=True)[:3])

    def _op(self, layer):
        """A TFOpLambda: its tensor operands become inputs, its constants config."""
        from mwconv.layers.tf_ops import tf_op_entry

        name = self._name(layer)
        function = layer.get("config", {}).get("function")
        if len(layer["inbound_nodes"]) != 1:
            raise InputRejected(f"TF op layer '{name}' ({function}) is called {len(layer['inbound_nodes'])} "
                                "times; mwconv translates ops called once", path=self.path)
        node = layer["inbound_nodes"][0]
        kwargs = dict(node[-1][3]) if len(node[-1]) == 4 and isinstance(node[-1][3], dict) else {}
        kwargs.pop("name", None)
        tensors = {k: v for k, v in kwargs.items() if _is_ref(v)}
        constants = {k: v for k, v in kwargs.items() if k not in tensors}
        inputs = [e[:3] for e in node] + [v[:3] for v in tensors.values()]
        entry = tf_op_entry(name, function, first_count=len(node), tensor_kwargs=list(tensors),
                            constants=constants, path=self.path)
        layer.clear()
        layer.update(entry)
        layer["name"] = name
        layer["inbound_nodes"] = [[e + [{}] for e in inputs]]
        self.result.ops.append(function)

    # -- one layer -----------------------------------------------------------
    def layer(self, layer):
        class_name = layer.get("class_name")
        if isinstance(class_name, str) and class_name.startswith("Custom>") \
                and class_name[len("Custom>"):] in (*REPLACED, *INFERENCE_IDENTITY):
            class_name = layer["class_name"] = class_name[len("Custom>"):]   # tf-keras's applications register so
        cfg = layer.setdefault("config", {})
        name = self._name(layer)
        if class_name in MODEL_CLASSES:
            return self.model(layer)
        if class_name == "Lambda":
            raise InputRejected(f"layer '{name}' is a Lambda layer, which holds Python code; mwconv never runs "
                                "code from a file: rebuild the model in Python and pass --model", path=self.path)
        if class_name in INFERENCE_IDENTITY:     # identity at inference
            layer["class_name"] = "Identity"
            layer["config"] = {k: cfg[k] for k in ("name", "trainable", "dtype") if k in cfg}
            return layer
        if class_name in REPLACED:
            layer.update({"module": None, "registered_name": REPLACED[class_name]})
            self._values(class_name, cfg)
            return layer
        if class_name in REFUSED:
            raise InputRejected(f"layer '{name}' is a tf-keras {class_name}, which Keras 3 lacks: "
                                f"{REFUSED[class_name]}", path=self.path)
        cls = getattr(_keras().layers, class_name or "", None)
        if not isinstance(cls, type):
            raise InputRejected(f"layer '{name}' is of class '{class_name}', which is not a Keras layer; "
                                "rebuild the model in Python and pass --model", path=self.path)
        self._values(class_name, cfg)
        changed = translate_values(class_name, cfg)
        if changed:
            self.result.meanings[name] = changed
        dropped = filter_arguments(cls, class_name, cfg, name, self.path)
        if dropped:
            self.result.dropped[name] = dropped
        if _names_a_function(cfg):
            # Keras 3 reads a config without "module" the legacy way, which turns any string
            # that names a keras.layers function into that function (Attention's
            # score_mode="dot" becomes keras.layers.dot); the current reader keeps strings
            layer.update({"module": "keras.layers", "registered_name": None})
        if "module" in layer and isinstance(cfg.get("batch_input_shape"), list):
            # Keras 3's current reader passes it to the layer, which refuses it (its legacy
            # reader renames it): a Sequential's first layer declares the model's input so
            cfg["input_shape"] = cfg.pop("batch_input_shape")[1:]
        for key, value in cfg.items():        # wrapped layers: Bidirectional, TimeDistributed, RNN cells
            if isinstance(value, dict) and "class_name" in value and "config" in value:
                if isinstance(getattr(_keras().layers, value["class_name"], None), type):
                    self._wrapped(value)
            elif isinstance(value, list) and key == "cells":
                for cell in value:
                    self._wrapped(cell)
        return layer

    def _wrapped(self, layer):
        """A layer inside a wrapper; the wrapper's Keras 3 reader finds it by its module, which
        tf-keras's SavedModel metadata leaves out (its .h5 and .keras configs write it)."""
        if isinstance(layer, dict) and "module" not in layer \
                and isinstance(getattr(_keras().layers, layer.get("class_name") or "", None), type):
            layer.update({"module": "keras.layers", "registered_name": None})
        self.layer(layer)

    @staticmethod
    def _values(class_name, cfg):
        """Values Keras 3 reads differently."""
        if class_name == "InputLayer":
            if "batch_input_shape" in cfg:
                cfg["batch_shape"] = cfg.pop("batch_input_shape")
            if cfg.get("ragged") is False:
                cfg.pop("ragged")
        axis = cfg.get("axis")
        if class_name == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
            cfg["axis"] = int(axis[0])
        dtype = cfg.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") == "Policy":
            cfg["dtype"] = dtype.get("config", {}).get("name", "float32")


def _with_tensor_kwargs(node):
    """A call whose keyword arguments are tensors (``mha(q, value=v)``) in Keras 3's node
    form: its legacy reader passes a tf-keras node's keyword arguments through as they
    are, so ``value=['v', 0, 0]`` would reach the layer as a list, not the tensor."""
    kwargs = node[-1][3] if node and len(node[-1]) == 4 and isinstance(node[-1][3], dict) else {}
    if not any(_is_ref(v) for v in kwargs.values()):
        return node

    def tensor(ref):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": [], "dtype": "float32", "keras_history": list(ref[:3])}}
    first = [tensor(e) for e in node]
    return {"args": [first[0] if len(first) == 1 else first],
            "kwargs": {k: tensor(v) if _is_ref(v) else v for k, v in kwargs.items()}}


def _names_a_function(cfg):
    layers = _keras().layers
    return any(isinstance(v, str) and inspect.isfunction(getattr(layers, v, None))
               for k, v in cfg.items() if k != "name")


def _map_refs(value, fn):
    if _is_ref(value):
        return fn(value)
    if isinstance(value, list):
        return [_map_refs(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_refs(v, fn) for k, v in value.items()}
    return value


def translate(config, path=None):
    """A Keras 3 config for a tf.keras 2.x ``model_config`` (not modified), and what changed."""
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise InputRejected(f"the stored model is a '{found}', not a Functional or Sequential model; "
                            "pass --model", path=path)
    t = _Translator(path)
    t.result = Translation(copy.deepcopy(config))
    t.model(t.result.config)
    return t.result


def summarize(config, path=None, legacy=True):
    """For ``inspect``: the model's class, its layers by class (nested models included) and,
    for a tf.keras 2.x config, what the import translates, or why it refuses the model."""
    classes = {}

    def walk(entry):
        for layer in (entry.get("config") or {}).get("layers") or []:
            if isinstance(layer, dict):
                classes[layer.get("class_name")] = classes.get(layer.get("class_name"), 0) + 1
                if layer.get("class_name") in MODEL_CLASSES:
                    walk(layer)

    if isinstance(config, dict):
        walk(config)
    summary = {"class": config.get("class_name") if isinstance(config, dict) else None,
               "layers": sum(classes.values()), "classes": dict(sorted(classes.items()))}
    if legacy:
        try:
            summary["translation"] = translate(config, path).notes()
        except InputRejected as e:
            summary["refused"] = str(e)
    return summary
