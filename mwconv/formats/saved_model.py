"""TensorFlow SavedModel directories. Variables are listed from the object
graph in ``saved_model.pb`` (names and trainable flags as TensorFlow recorded
them) and read lazily from the checkpoint, one tensor at a time; no graph code
is executed. A legacy tf-keras SavedModel's architecture is its ``keras_metadata.pb``
(``tf_keras_files``)."""

import os

import numpy as np

from mwconv.errors import InputRejected
from mwconv.formats.artifact import Artifact
from mwconv.formats.base import Source, parse_json
from mwconv.formats.format import Format
from mwconv.formats.tf_functions import serving_function, with_tf_flags
from mwconv.manifest import dumps
from mwconv.outputs import atomic_output

MANIFEST_FILE = os.path.join("assets.extra", "mwconv_manifest.json")


def _check_inside(folder):
    """Refuse a SavedModel whose saved_model.pb, variables/ folder or variables files are
    links leading out of it: TensorFlow would read the outside files."""
    base = os.path.realpath(folder)
    variables = os.path.join(folder, "variables")
    paths = [os.path.join(folder, "saved_model.pb"), variables]
    if os.path.isdir(variables):
        paths += [os.path.join(variables, name) for name in sorted(os.listdir(variables))]
    for path in paths:
        real = os.path.realpath(path)
        if os.path.lexists(path) and os.path.commonpath([base, real]) != base:
            raise InputRejected(f"'{os.path.relpath(path, folder)}' is a link leading out of the SavedModel folder "
                                f"(to {real}): refused", path=folder)


class SavedModelSource(Source):
    format = "saved_model"

    def __init__(self, path):
        super().__init__(path)
        from mwconv._quiet import import_quietly
        tf = import_quietly("tensorflow")
        from google.protobuf.message import DecodeError
        from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

        pb = os.path.join(self.path, "saved_model.pb")
        sm = saved_model_pb2.SavedModel()
        try:
            with open(pb, "rb") as f:
                sm.ParseFromString(f.read())
            meta = sm.meta_graphs[0]
        except (DecodeError, IndexError, OSError) as e:
            raise InputRejected(f"corrupt saved_model.pb ({e})", path=pb) from e
        self.meta_graph = meta
        _check_inside(self.path)
        prefix = os.path.join(self.path, "variables", "variables")
        try:
            self._reader = tf.train.load_checkpoint(prefix)
            ckpt_graph = trackable_object_graph_pb2.TrackableObjectGraph()
            ckpt_graph.ParseFromString(self._reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        except (tf.errors.OpError, ValueError, IndexError, DecodeError) as e:
            raise InputRejected(f"cannot read the variables checkpoint ({e})", path=prefix) from e
        self._keys = {}
        self._trainable = {}
        by_node = {}
        stored = 0
        shapes = self._reader.get_variable_to_shape_map()
        dtypes = self._reader.get_variable_to_dtype_map()
        for i, node in enumerate(meta.object_graph_def.nodes):
            if node.WhichOneof("kind") != "variable" or i >= len(ckpt_graph.nodes):
                continue
            keys = [a.checkpoint_key for a in ckpt_graph.nodes[i].attributes if a.name == "VARIABLE_VALUE"]
            if not keys or keys[0] not in shapes:
                continue
            stored += 1
            var = node.variable
            name = var.name or keys[0]
            by_node.setdefault(i, name)
            if name in self._keys:
                continue  # the same variable saved again under another object path
            self._add(name, shapes[keys[0]], dtypes[keys[0]].as_numpy_dtype)
            self._keys[name] = keys[0]
            self._trainable[name] = bool(var.trainable)
        self._metadata.update({
            "signatures": {k: {"inputs": sorted(v.inputs), "outputs": sorted(v.outputs)}
                           for k, v in meta.signature_def.items() if not k.startswith("__")},
            "variables_stored": stored,
            "variables_unique": len(self._keys),
        })
        self._read_keras_metadata(meta, by_node)
        manifest_path = os.path.join(self.path, MANIFEST_FILE)
        self._manifest = None
        if os.path.isfile(manifest_path):
            from mwconv.formats.base import read_text_file
            self._manifest = parse_json(read_text_file(manifest_path, "mwconv manifest", limit=64 << 20),
                                        manifest_path, "mwconv manifest")

    def _read_keras_metadata(self, meta, by_node):
        """A legacy tf-keras SavedModel's config (``keras_metadata.pb``) and the Keras paths of
        its variables inside nested models."""
        from mwconv.formats.tf_keras_files import saved_model_aliases, saved_model_config
        self._keras_config = saved_model_config(self.path)
        self.has_architecture = bool(self._metadata["signatures"]) or self._keras_config is not None
        self._aliases = {}
        if self._keras_config is not None:
            self._metadata["keras_metadata"] = True
            self._aliases = saved_model_aliases(meta.object_graph_def, by_node, self._keras_config)

    def _read(self, name):
        import tensorflow as tf
        try:
            return self._reader.get_tensor(self._keys[name])
        except (tf.errors.OpError, IndexError, ValueError) as e:
            # TensorFlow checks each tensor's checksum: a flipped byte or a cut file lands here
            detail = getattr(e, "message", None) or str(e) or type(e).__name__
            raise InputRejected(f"cannot read the variable from the checkpoint (corrupt or truncated: {detail})",
                                path=self.path, tensor=name) from e

    @property
    def architecture_kind(self):
        """``keras`` for a legacy tf-keras SavedModel: its ``keras_metadata.pb`` holds the config."""
        return "keras" if self._keras_config is not None else None

    def key_aliases(self):
        return dict(self._aliases)

    def describe_architecture(self):
        if self._keras_config is None:
            return None
        from mwconv.legacy import summarize
        return summarize(self._keras_config, self.path)

    def architecture(self):
        """The model of a legacy tf-keras SavedModel, from ``keras_metadata.pb`` through mwconv's
        translator (its weights are this source's checkpoint variables, matched by name)."""
        if self._keras_config is None:
            return super().architecture()
        from mwconv.formats.config_audit import check_declared_sizes, refuse_code
        from mwconv.formats.tf_keras_files import build_translated
        refuse_code(self._keras_config, self.path)
        check_declared_sizes(self._keras_config, sum(i.nbytes for i in self._infos.values()), self.path)
        return build_translated(self._keras_config, self.path)[0]

    def partition(self):
        return dict(self._trainable)

    def manifest(self):
        return self._manifest


def restored_variables(loaded, unique=False):
    """Every ``tf.Variable`` reachable from an object returned by
    ``tf.saved_model.load``, as ``{name: variable}`` (first one per name; with ``unique``,
    names that two different variables share are left out)."""
    import tensorflow as tf

    found, shared, seen, stack = {}, set(), set(), [loaded]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, tf.Variable):
            name = obj.name.split(":")[0]
            if found.setdefault(name, obj) is not obj:
                shared.add(name)
            continue
        children = getattr(obj, "_trackable_children", None)
        if children is None:
            continue
        try:
            stack.extend(children().values())
        except (TypeError, ValueError):
            continue
    return {k: v for k, v in found.items() if k not in shared} if unique else found


# -- writing ----------------------------------------------------------------------
def _write_staged(model, staged, manifest):
    import tensorflow as tf

    from mwconv import _compat
    model = with_tf_flags(model)
    # each weight stored under mwconv's stable path (layers.conversion.stable_paths), for this save only
    names = [(v.value, f"{v.path}:0") for v in model.weights if v.value.name != f"{v.path}:0"]
    with _compat.saved_names(names):
        _save_root(tf, _compat.auto_trackable(tf), model, staged)
    os.makedirs(os.path.join(staged, "assets.extra"), exist_ok=True)
    with open(os.path.join(staged, "assets.extra", "mwconv_manifest.json"), "w", encoding="utf8") as f:
        f.write(dumps(manifest))


def _save_root(tf, root, model, staged):
    serve, _ = serving_function(model)
    weights = {id(v) for v in model.weights}
    trainable = {id(v) for v in model.trainable_weights}
    # every variable is referenced from these lists and stored once
    root.trainable_variables = [v.value for v in model.weights if id(v) in trainable]
    root.non_trainable_variables = [v.value for v in model.weights if id(v) not in trainable]
    root.variables = [v.value for v in model.weights]
    root.other_state = [v.value for v in model.variables if id(v) not in weights]
    root.serve = serve
    tf.saved_model.save(root, staged, signatures={"serving_default": serve.get_concrete_function()})


def write(model, out, manifest, options):
    """A SavedModel folder: serving_default signature, every weight stored once with its flag."""
    with atomic_output(out, force=options.force) as staged:
        _write_staged(model, staged, manifest)


# -- verifying ----------------------------------------------------------------------
class SavedModelArtifact(Artifact):
    kind = "saved_model"

    def __init__(self, path, reference_model=None):
        super().__init__(path)
        from mwconv._quiet import import_quietly
        tf = import_quietly("tensorflow")
        self.source = SavedModelSource(self.path)
        self.manifest = self.source.manifest()
        from mwconv.formats.graph_audit import audit_saved_model
        audit_saved_model(self.source.meta_graph, self.path)        # before TensorFlow runs any of it
        self.loaded = tf.saved_model.load(self.path)
        if "serving_default" not in self.loaded.signatures:
            raise InputRejected("has no serving_default signature", path=self.path)
        self.fn = self.loaded.signatures["serving_default"]

    def weights(self):
        """Each weight as the loaded SavedModel holds it (restored from the checkpoint, whose
        checksums TensorFlow checked), viewed without a copy; read from the checkpoint where
        a name is not one variable's alone."""
        flags = self.source.partition()
        restored = restored_variables(self.loaded, unique=True)

        def value(name):
            var = restored.get(name)
            if var is not None and tuple(var.shape) == self.source.info(name).shape:
                return np.asarray(var.read_value())
            return np.asarray(self.source.get_tensor(name))
        # a Dropout's random-number state is stored so the model runs, but it is no weight
        return ((n, value(n), flags[n]) for n in self.source.keys() if n.rsplit("/", 1)[-1] != "seed_generator_state")

    def weight(self, path):
        return np.asarray(self.source.get_tensor(path))

    def input_specs(self):
        _, kwargs = self.fn.structured_input_signature
        return [(name, tuple(spec.shape), spec.dtype.name) for name, spec in sorted(kwargs.items())]

    def output_names(self):
        return sorted(self.fn.structured_outputs)

    def run(self, inputs, device=None):
        import tensorflow as tf
        feed = {n: tf.constant(inputs[n]) for n, _, _ in self.input_specs()}
        if device is None:
            out = self.fn(**feed)
        else:
            with tf.device(device):
                out = self.fn(**feed)
        return [np.asarray(out[n]) for n in self.output_names()]



def _sniff(path, head):
    return False   # a folder: detect_format recognises it by its saved_model.pb


FORMAT = Format("saved_model", "TensorFlow SavedModel", (), None, "mwconv.formats.saved_model:SavedModelSource",
                "assets.extra/mwconv_manifest.json", records_trainable=True,
                artifact="mwconv.formats.saved_model:SavedModelArtifact", write=write)
