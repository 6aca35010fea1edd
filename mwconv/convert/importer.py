"""``mwconv import``: inject source tensors into a Keras model as frozen
weights of mixed layers, with a strict report of what went where.

>>> model, report = import_weights("state_dict.npz", model="net.py:build",   # doctest: +SKIP
...                                rules="rules.txt", layout="torch")
>>> report.missing, report.unused
([], [])
"""

import dataclasses
import fnmatch

import numpy as np

from mwconv import modelio
from mwconv.convert import layout as layouts
from mwconv.convert.matching import match
from mwconv.convert.rules import load_rules
from mwconv.convert.target import catalogue, load_model_spec
from mwconv.errors import InputRejected, printable, shorten
from mwconv.options import ImportOptions
from mwconv.formats import open_source


@dataclasses.dataclass
class ImportReport:
    source: str
    source_format: str
    layout: str
    weights: list          # one dict per target weight
    missing: list          # target paths that received nothing
    unused: list           # source tensors that went nowhere
    ignored: list          # source tensors a rule marked !ignore
    mismatched: list       # dicts: target, source, shapes, transform
    provenance: dict = dataclasses.field(default_factory=dict)  # target path -> where it came from
    statistics: dict = dataclasses.field(default_factory=dict)  # statistics layer path -> fixed/opted-in/trains

    def to_dict(self):
        return dataclasses.asdict(self)

    def statistics_line(self):
        """How the BatchNormalization layers behave in ``fit``."""
        words = {"fixed": "frozen (inference mode in fit, statistics fixed)",
                 "opted-in": "frozen with statistics updating (--update-statistics)", "trains": "training"}
        counts = [(state, [p for p, s in self.statistics.items() if s == state]) for state in words]
        parts = [f"{len(paths)} {words[state]}" + (f": {shorten(paths, 5)}" if state != "fixed" else "")
                 for state, paths in counts if paths]
        return "BatchNormalization layers: " + "; ".join(parts)

    @property
    def ok(self):
        return not (self.missing or self.unused or self.mismatched)

    def format(self, out):
        """The mapping report for people: one row per target weight, then what is missing or unused."""
        rows = [("target weight", "source tensor", "transform", "state")]
        for w in self.weights:
            rows.append((printable(w["target"]), printable(w["source"] or "-"), w["transform"] or "-",
                         "trainable" if w["trainable"] else "frozen"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        frozen = sum(1 for w in self.weights if not w["trainable"])
        lines.append(f"{len(self.weights)} weights: {len(self.provenance)} imported, {frozen} frozen, "
                     f"{len(self.weights) - frozen} trainable (layout {self.layout})")
        if self.statistics:
            lines.append(self.statistics_line())
        ignored = "ignored (by rules, or read at import as shapes, pads or folded ONNX values)"
        for label, items in (("missing (kept their initial values)", self.missing),
                             ("unused source tensors", self.unused), (ignored, self.ignored)):
            if items:
                lines.append(f"{label}: {printable(shorten(items, 50))}")
        lines.append(f"wrote {out}")
        return "\n".join(lines)



def _graph_matches(src, targets, plan, attribute_constants):
    """Matches from an ONNX graph rebuild: each weight knows its initializer."""
    from mwconv.convert.matching import Match

    by_path = {t.path: t for t in targets}
    matches = [Match(by_path[path], source, "graph", transform) for path, source, transform in plan]
    used = {source for _, source, _ in plan} | set(attribute_constants)
    unused = [name for name in src.keys() if name not in used]
    return matches, unused, sorted(attribute_constants)


def _transform(m, layout, usage):
    if m.transform != "auto":
        return m.transform
    name = layouts.transform_for(layout, m.target.layer_class, m.target.weight, m.target.owner)
    if layout == "onnx" and name == "linear" and m.source in usage:
        op, index, attrs = usage[m.source]
        if op == "MatMul" or (op == "Gemm" and index == 1 and not attrs.get("transB", 0)):
            name = "none"  # already (in, out)
    return name


def _planned_shape(transform, shape, target_shape):
    dummy = np.broadcast_to(np.zeros((), np.int8), shape)
    try:
        return tuple(layouts.apply(transform, dummy, target_shape).shape)
    except ValueError:
        return None


def _freeze_plan(targets, imported, freeze, train):
    frozen = set()
    for t in targets:
        if t.path in imported:
            if not any(fnmatch.fnmatchcase(t.path, g) for g in train):
                frozen.add(t.path)
        elif any(fnmatch.fnmatchcase(t.path, g) for g in freeze) or not t.trainable:
            frozen.add(t.path)
    return frozen


def import_weights(source, model=None, *, options=None, **fields):
    """Build the target model, inject the source's tensors (frozen), return ``(model, report)``.

    ``source`` is a path; ``model`` a .keras path, ``module:function``,
    ``file.py:function`` or a built Keras model (never modified: a converted
    clone is returned). ``options`` is an ImportOptions, else one is built from
    ``fields`` (``rules``, ``layout``, ``freeze``, ``train``, ``allow_missing``,
    ``allow_unused``, ``allow_nonfinite``, ``channels_last``, ``output``,
    ``force``). With ``output``, also write it there as a ``.keras`` file
    carrying the manifest (atomically; an existing file needs ``force``).
    Raises InputRejected (exit 3) on any missing, unused or mismatched entry
    unless allowed; the report is in the error's ``details``. An ONNX source
    without ``model`` is rebuilt from its graph (NCHW kept unless
    ``channels_last``).
    """
    opts = options or ImportOptions(model=model, **fields)
    if options is not None and model is not None:       # a model given beside the options wins
        opts = dataclasses.replace(options, model=model)
    if opts.output is not None:
        from mwconv.formats import check_replaceable
        from mwconv.outputs import check_target
        check_target(opts.output, opts.force)
        check_replaceable(opts.output, "keras", [source])
    result, report = _import(source, opts)
    if opts.output is not None:
        from mwconv.formats.keras_file import save_keras
        from mwconv.manifest import build_manifest
        from mwconv.layers.statistics import model_statistics
        statistics = {path: state for path, (_, state) in model_statistics(result).items()}
        from mwconv.layers.conversion import whole_frozen_layers
        save_keras(result, opts.output, build_manifest(result, report.provenance, statistics=statistics,
                                                       frozen_layers=whole_frozen_layers(result)),
                   force=opts.force)
    return result, report


def _target(src, model, channels_last, keras):
    """(target model, owned by us?, graph plan or None, constants used as attributes)."""
    if model is None and src.architecture_kind == "onnx-graph":
        from mwconv.convert.onnx import build_from_onnx
        built, graph_plan, constants = build_from_onnx(src, channels_last)
        return built, True, graph_plan, constants
    if model is None:
        return src.architecture(), True, None, ()
    if isinstance(model, keras.Model):
        return model, False, None, ()
    return load_model_spec(str(model)), True, None, ()


@dataclasses.dataclass(frozen=True)
class PlannedWeight:
    """One target weight and where its value comes from."""

    target: str         # the target weight's path
    shape: tuple        # the target weight's shape
    source: str         # the source tensor's name
    how: str            # how it matched: exact, h5-key, rule:N, normalised, graph
    transform: str      # layout transform applied to the source tensor


def _plan(src, matches, layout, usage):
    """[PlannedWeight], and the shape mismatches."""
    plan, mismatched = [], []
    for m in matches:
        info = src.info(m.source)
        transform = _transform(m, layout, usage)
        shape = _planned_shape(transform, info.shape, m.target.shape)
        if shape != m.target.shape:
            mismatched.append({"target": m.target.path, "source": m.source, "source_shape": list(info.shape),
                               "transformed_shape": None if shape is None else list(shape),
                               "target_shape": list(m.target.shape), "transform": transform})
        plan.append(PlannedWeight(m.target.path, m.target.shape, m.source, m.how, transform))
    return plan, mismatched


def _inject(result, src, plan, allow_nonfinite, provenance):
    """Read, check, transform and assign each planned tensor, one at a time."""
    from mwconv import progress

    variables = {v.path: v for v in result.weights}
    owners = {v.path: layer for layer in result.layers for v in layer.weights}
    total = sum(src.info(p.source).nbytes for p in plan)
    with progress.tensor_bar(f"importing {len(plan)} tensors", total) as bar:
        for p in plan:
            value = src.get_tensor(p.source)
            if not allow_nonfinite and not _mask_constant(owners[p.target], value):
                layouts.check_finite(value, src.path, p.source)
            value = layouts.apply(p.transform, value, p.shape)
            var = variables[p.target]
            _assign(owners[p.target], var, layouts.cast_checked(value, var.dtype, src.path, p.source))
            provenance[p.target] = {"source_file": src.path, "tensor": p.source, "transform": p.transform,
                                    "match": p.how}
            bar.update(src.info(p.source).nbytes)


def _mask_constant(layer, value):
    """An ONNX graph constant that is a mask or a fill value, not a weight of the network:
    held by one of the small layers of ``mwconv.layers.onnx_*``, and either one value (``Where(m, x, -inf)``)
    or nothing but 0 and +-inf (an additive attention mask). Those import without
    --allow-nonfinite; a learned constant (a position embedding) holding Inf or NaN does not."""
    if not type(layer).__module__.startswith("mwconv.layers.onnx"):     # OnnxConstant, ConstantArithmetic, ...
        return False
    a = np.asarray(value)
    if a.dtype.kind not in "fc" or a.size == 1:
        return True
    return not np.isnan(a).any() and not np.any(a[np.isfinite(a)] != 0)


def _assign(layer, var, value):
    from mwconv.layers import KernelVariantsMixin

    if isinstance(layer, KernelVariantsMixin) and var is layer._base_variable():
        layer.assign_pretrained(value)
    else:
        var.assign(value)


def _prepare(src, opts, keras):
    """Target model, match, plan and report, before anything is built: (state dict, report)."""
    rules = opts.rules
    rule_list = load_rules(rules) if isinstance(rules, (str, bytes)) or hasattr(rules, "__fspath__") else (rules or [])
    from mwconv.layers.conversion import stable_paths

    target_model, owned, graph_plan, attribute_constants = _target(src, opts.model, opts.channels_last, keras)
    before = {v.path: v for v in target_model.weights}
    stable_paths(target_model)
    if graph_plan is not None:     # the graph plan names weights by the paths they were built with
        graph_plan = [(before[path].path, source, transform) for path, source, transform in graph_plan]
    chosen = src.default_layout if opts.layout == "auto" else opts.layout
    targets = catalogue(target_model)
    if graph_plan is not None:
        matches, unused, ignored = _graph_matches(src, targets, graph_plan, attribute_constants)
    else:
        matches, unused, ignored = match(src.keys(), targets, rule_list, target_model.name, path=src.path,
                                         aliases=src.key_aliases())
    plan, mismatched = _plan(src, matches, chosen, src.consumers())
    imported = {p.target for p in plan}
    report = ImportReport(src.path, src.format, chosen, [], [t.path for t in targets if t.path not in imported],
                          unused, ignored, mismatched)
    _raise_if_strict(report, opts.allow_missing, opts.allow_unused)
    frozen = _freeze_plan(targets, imported, opts.freeze, opts.train)
    opted = _opted_in(target_model, opts.update_statistics)
    return {"model": target_model, "owned": owned, "plan": plan, "imported": imported, "frozen": frozen,
            "opted": opted}, report


def _opted_in(model, globs):
    """Paths of the statistics layers that ``--update-statistics`` globs name (by layer path
    or by one of its weight paths); a glob that names none is a usage error."""
    from mwconv.errors import UsageError
    from mwconv.layers.conversion import statistics_layers

    if not globs:
        return set()
    layers = statistics_layers(model)
    opted = set()
    for glob in globs:
        hits = {path for path, weights in layers.items()
                if fnmatch.fnmatchcase(path, glob) or any(fnmatch.fnmatchcase(w, glob) for w in weights)}
        if not hits:
            raise UsageError(f"--update-statistics {glob!r} matches no layer with moving statistics (the target's are "
                             f"{shorten(sorted(layers), 8) or 'none'})")
        opted |= hits
    return opted


def _build(src, state, opts, report):
    """The mixed model from the target's config, the target's own values kept, the source's injected."""
    from mwconv.layers.conversion import check_same_paths, mixed_config, model_from_config, restore_initializers

    from mwconv.convert.digest import SourceDigest
    digest = SourceDigest(src)
    target_model, imported = state.pop("model"), state["imported"]
    config, initializers = mixed_config(target_model, state["frozen"], overwritten=imported,
                                        update_statistics=state["opted"], whole=opts.allow_whole_layer_freeze)
    kept = {v.path: np.array(v.numpy()) for v in target_model.weights if v.path not in imported}
    paths = [v.path for v in target_model.weights]
    # drop every reference to a target model we own, so its weights are freed before the
    # converted model allocates its own: the weights exist once at a time
    if state["owned"]:
        target_model = None
        src.release_architecture()
        modelio.release_memory()
    result = model_from_config(config)
    restore_initializers(result, initializers)
    check_same_paths(paths, result)
    by_path = {v.path: v for v in result.weights}
    for path, value in kept.items():  # weights the source does not fill keep the target's values
        by_path[path].assign(value)
    _hold_freezes(result, state["frozen"], opts.allow_whole_layer_freeze, state["opted"])
    _inject(result, src, state["plan"], opts.allow_nonfinite, report.provenance)
    for p in report.provenance.values():
        p["source_sha256"] = digest.result()
    return result


def _hold_freezes(model, frozen, allowed, opted=()):
    """Every weight meant to be frozen is frozen in ``model``, or the import stops (exit 3):
    a custom layer that builds its own sub-layers (keras-hub's TransformerEncoder) cannot
    hold their flags in its config. With ``allowed`` such layers are frozen whole."""
    from mwconv.layers.conversion import freeze_whole, unheld_freezes
    from mwconv.layers.in_place import freeze_in_place, freezes_in_place
    if freezes_in_place(model):            # a keras-hub Backbone or Task: frozen on the built model
        freeze_in_place(model, frozen, opted)
        return
    unheld = unheld_freezes(model, frozen)
    if not unheld:
        return
    if not allowed:
        first = next(iter(unheld))
        layer = dict((layer.name, layer) for layer in model.layers).get(first.split("/")[0])
        kind = f"{type(layer).__module__.split('.')[0]} {type(layer).__name__}" if layer is not None else "a layer"
        raise InputRejected(
            f"layer '{first}' ({kind}) is not a built-in Keras layer and builds its own sub-layers, so no config "
            f"holds a frozen flag for their {len(unheld[first])} imported weights ('{unheld[first][0]}', ...): "
            f"a reloaded model would train them ({len(unheld)} such layers: {shorten(list(unheld), 6)}); pass "
            "--allow-whole-layer-freeze to freeze each such layer whole (recorded in the manifest and applied "
            "again by mwconv's loader), or --train them")
    freeze_whole(model, unheld)


def _import(source, opts):
    from mwconv.modelio import keras_api

    with open_source(source) as src:
        state, report = _prepare(src, opts, keras_api())
        result = _build(src, state, opts, report)
    from mwconv.layers.statistics import model_statistics
    report.statistics = {layer: state for layer, state in model_statistics(result).values()}
    trainable_ids = {id(v) for v in result.trainable_weights}
    by_target = {p.target: p for p in state["plan"]}
    for v in result.weights:
        p = by_target.get(v.path)
        report.weights.append({"target": v.path, "source": p and p.source, "match": p and p.how,
                               "transform": p and p.transform, "shape": list(v.shape), "dtype": v.dtype,
                               "trainable": id(v) in trainable_ids})
    return result, report


def _raise_if_strict(report, allow_missing, allow_unused):
    problems = []
    if report.mismatched:
        shown = [f"{d['source']} {tuple(d['source_shape'])} -> {d['target']} {tuple(d['target_shape'])} (transform "
                 f"'{d['transform']}' gives {tuple(d['transformed_shape']) if d['transformed_shape'] else 'no fit'})"
                 for d in report.mismatched]
        problems.append("shape mismatch: " + "; ".join(shown[:20])
                        + (f"; ... and {len(shown) - 20:,} more" if len(shown) > 20 else ""))
    if report.missing and not allow_missing:
        problems.append(f"{len(report.missing)} target weights get no source tensor: {shorten(report.missing)} "
                        "(--allow-missing keeps their initial values)")
    if report.unused and not allow_unused:
        problems.append(f"{len(report.unused)} source tensors are unused: {shorten(report.unused)} "
                        "(--allow-unused, or a '-> !ignore' rule in --map)")
    if problems:
        raise InputRejected("the mapping does not fit: " + " | ".join(problems), path=report.source,
                            details=report.to_dict())
