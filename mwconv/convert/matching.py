"""Match source tensors to target weights by name, never by position.

Order: exact path (or the file-format key Keras itself would write for that
weight), then the user's rules, then normalised names. Two sources for one
target, or one source fitting two targets, is an error, not a guess.
"""

import dataclasses
import re

from mwconv.convert.rules import IGNORE
from mwconv.errors import InputRejected

# the last name component, made comparable across Keras 2/3, PyTorch and ONNX
SYNONYMS = {
    "kernel": "weight", "embeddings": "weight", "gamma": "weight", "scale": "weight", "alpha": "weight",
    "beta": "bias", "moving_mean": "running_mean", "mean": "running_mean",
    "moving_variance": "running_var", "var": "running_var",
    "depthwise_kernel": "weight",   # tf-keras's DepthwiseConv2D kernel; Keras 3 calls it kernel
}


def normalise(name):
    """``conv/conv/kernel:0`` -> ``conv/kernel``; ``fc1.weight`` -> ``fc1/weight``."""
    name = re.sub(r":\d+$", "", name).replace(".", "/").strip("/").lower()
    parts = []
    for part in name.split("/"):
        if not parts or parts[-1] != part:
            parts.append(part)
    return "/".join(parts)


def canonical(name):
    parts = normalise(name).split("/")
    parts[-1] = SYNONYMS.get(parts[-1], parts[-1])
    return "/".join(parts)


def loose(name):
    """``canonical`` with '/' read as '_': a tf-keras layer ``conv1/conv`` is ``conv1_conv`` in Keras 3."""
    return canonical(name).replace("/", "_")


@dataclasses.dataclass
class Target:
    path: str
    layer: object
    layer_class: str
    weight: str
    shape: tuple
    dtype: str
    trainable: bool
    aliases: tuple = ()
    owner: object = None          # the layer that created the weight (a sub-layer's, at any depth)


@dataclasses.dataclass
class Match:
    target: Target
    source: str
    how: str          # exact | alias | rule:N | normalised
    transform: str    # requested: auto or a transform name


def _keys(target, model_name):
    keys = {normalise(target.path), canonical(target.path), loose(target.path)}
    short = f"{target.layer.name}/{target.weight}"
    keys |= {normalise(short), canonical(short), loose(short)}
    keys |= {f(a) for a in target.aliases for f in (normalise, canonical, loose)}
    if model_name and target.path.startswith(model_name + "/"):
        keys.add(canonical(target.path[len(model_name) + 1:]))
    if hasattr(target.layer, "get_layer") and target.path.startswith(target.layer.name + "/"):
        keys.add(canonical(target.path[len(target.layer.name) + 1:]))     # below a nested model (a task's backbone)
    return keys


class _Matcher:
    """The matching stages in order; each claims targets and passes on what it left."""

    def __init__(self, targets, path, aliases=None):
        self.targets, self.path = targets, path
        self.source_aliases = aliases or {}
        self.by_path = {t.path: t for t in targets}
        self.claimed = {}   # target path -> Match
        self.matches, self.unused, self.ignored = [], [], []

    def claim(self, target, source, how, transform="auto"):
        if target.path in self.claimed:
            other = self.claimed[target.path]
            raise InputRejected(f"two source tensors match target '{target.path}': '{other.source}' ({other.how}) "
                                f"and '{source}' ({how}); add a rule to --map to say which", path=self.path,
                                tensor=source)
        m = Match(target, source, how, transform)
        self.claimed[target.path] = m
        self.matches.append(m)

    def exact(self, names):
        """Exact weight paths, then the keys Keras 3 writes in a .weights.h5."""
        aliases = {a: t for t in self.targets for a in t.aliases}
        pending = []
        for name in names:
            if name in self.by_path:
                self.claim(self.by_path[name], name, "exact")
            elif self.source_aliases.get(name) in aliases:      # a key qualified by its model's class
                self.claim(aliases[self.source_aliases[name]], name, "alias")
            elif name in aliases:
                self.claim(aliases[name], name, "alias")
            elif self.source_aliases.get(name) in self.by_path:
                self.claim(self.by_path[self.source_aliases[name]], name, "alias")
            else:
                pending.append(name)
        return pending

    def by_rules(self, names, rules):
        """The first rule whose regex matches a name decides; its target is read like a
        source name (``bn1/bias`` is ``bn1/beta``, ``conv1.weight`` is ``conv1/kernel``)."""
        still = []
        index = {}
        for target in self.targets:
            for key in _keys(target, None):
                index.setdefault(key, set()).add(target.path)
        for name in names:
            rule, target_path = next(((r, r.apply(name)) for r in rules if r.apply(name) is not None), (None, None))
            if rule is None:
                still.append(name)
            elif target_path == IGNORE:
                self.ignored.append(name)
            elif "|" in target_path:                 # split: one slice of the source per target
                paths = target_path.split("|")
                for i, path in enumerate(paths):
                    found = self._rule_target(path, index)
                    if found is None:
                        raise InputRejected(_no_such_target(name, rule, path, rules, self.by_path, index),
                                            path=self.path, tensor=name)
                    part = rule.transform.replace("split", f"part({i}/{len(paths)})")
                    self.claim(self.by_path[found], name, rule.label, part)
            else:
                found = self._rule_target(target_path, index)
                if found is None:
                    raise InputRejected(_no_such_target(name, rule, target_path, rules, self.by_path, index),
                                        path=self.path, tensor=name)
                self.claim(self.by_path[found], name, rule.label, rule.transform)
        return still

    def _rule_target(self, target_path, index):
        if target_path in self.by_path:
            return target_path
        for key in (normalise(target_path), canonical(target_path), loose(target_path)):
            hits = index.get(key, set())
            if len(hits) == 1:
                return next(iter(hits))
        return None

    def normalised(self, names, model_name):
        index = {}
        for t in self.targets:
            if t.path not in self.claimed:
                for key in _keys(t, model_name):
                    index.setdefault(key, []).append(t)
        for name in names:
            found = None
            alias = self.source_aliases.get(name)
            keys = [normalise(name), canonical(name)]
            keys += [normalise(alias), canonical(alias), loose(alias)] if alias else [loose(name)]
            for key in keys:
                hits = index.get(key, [])  # targets claimed earlier in this stage stay: two claims is an error
                if len(hits) > 1:
                    raise InputRejected(f"its normalised name '{key}' fits several targets "
                                        f"({', '.join(t.path for t in hits)}); add a rule to --map", path=self.path,
                                        tensor=name)
                if hits:
                    found = hits[0]
                    break
            if found is None:
                self.unused.append(name)
            else:
                self.claim(found, name, "normalised")


def _no_such_target(name, rule, target_path, rules, by_path, index):
    """Why a rule's target is no weight of the model, and what would have matched: a later
    rule (rules are tried in file order), or the nearest target names."""
    said = f"rule on {rule.where} ({rule.pattern.pattern} -> {rule.target}) maps it to '{target_path}', which is " \
           "not a weight of the target model"
    for later in rules[rules.index(rule) + 1:]:
        if later.apply(name) is not None:
            other = later.apply(name)
            if other == IGNORE or other in by_path or any(len(index.get(f(other), ())) == 1
                                                          for f in (normalise, canonical, loose)):
                what = "ignores it" if other == IGNORE else f"maps it to '{other}'"
                return (f"{said}; {later.where} {what}, but rules are tried in file order and the first match "
                        f"wins: move {later.where} above {rule.where}")
    import difflib
    near = difflib.get_close_matches(target_path, list(by_path), n=3, cutoff=0.5)
    hint = f"; nearest target weights: {', '.join(near)}" if near else ""
    return f"{said}{hint} (`mwconv inspect` on a model lists its weights)"


def match(source_names, targets, rules, model_name=None, path=None, aliases=None):
    """Return (matches, unused source names, ignored source names): exact names first,
    then the rules in file order, then normalised names. ``aliases`` maps source names
    to other names the format gives them (``Source.key_aliases``)."""
    m = _Matcher(targets, path, aliases)
    m.normalised(m.by_rules(m.exact(source_names), rules), model_name)
    return m.matches, m.unused, m.ignored
