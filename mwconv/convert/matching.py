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


@dataclasses.dataclass
class Match:
    target: Target
    source: str
    how: str          # exact | alias | rule:N | normalised
    transform: str    # requested: auto or a transform name


def _keys(target, model_name):
    keys = {normalise(target.path), canonical(target.path)}
    short = f"{target.layer.name}/{target.weight}"
    keys |= {normalise(short), canonical(short)}
    if model_name and target.path.startswith(model_name + "/"):
        keys.add(canonical(target.path[len(model_name) + 1:]))
    return keys


def match(source_names, targets, rules, model_name=None, path=None):
    """Return (matches, unused source names, ignored source names)."""
    by_path = {t.path: t for t in targets}
    claimed = {}   # target path -> Match
    matches, unused, ignored = [], [], []

    def claim(target, source, how, transform="auto"):
        if target.path in claimed:
            other = claimed[target.path]
            raise InputRejected(f"two source tensors match target '{target.path}': '{other.source}' ({other.how}) "
                                f"and '{source}' ({how}); add a rule to --map to say which", path=path, tensor=source)
        m = Match(target, source, how, transform)
        claimed[target.path] = m
        matches.append(m)

    aliases = {}
    for t in targets:
        for a in t.aliases:
            aliases[a] = t
    pending = []
    for name in source_names:
        if name in by_path:
            claim(by_path[name], name, "exact")
        elif name in aliases:
            claim(aliases[name], name, "alias")
        else:
            pending.append(name)

    still = []
    for name in pending:
        for rule in rules:
            target_path = rule.apply(name)
            if target_path is None:
                continue
            if target_path == IGNORE:
                ignored.append(name)
            elif target_path not in by_path:
                raise InputRejected(f"rule on line {rule.line} maps it to '{target_path}', which is not a weight "
                                    f"of the target model", path=path, tensor=name)
            else:
                claim(by_path[target_path], name, f"rule:{rule.line}", rule.transform)
            break
        else:
            still.append(name)

    index = {}
    for t in targets:
        if t.path in claimed:
            continue
        for key in _keys(t, model_name):
            index.setdefault(key, []).append(t)
    for name in still:
        found = None
        for key in (normalise(name), canonical(name)):
            hits = index.get(key, [])  # targets claimed earlier in this stage stay: two claims is an error
            if len(hits) > 1:
                raise InputRejected(f"its normalised name '{key}' fits several targets "
                                    f"({', '.join(t.path for t in hits)}); add a rule to --map", path=path, tensor=name)
            if hits:
                found = hits[0]
                break
        if found is None:
            unused.append(name)
        else:
            claim(found, name, "normalised")
    return matches, unused, ignored
