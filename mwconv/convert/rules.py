"""The name-mapping rules file of ``mwconv import --map``.

One rule a line, tried in order; ``#`` starts a comment::

    # source tensor (regex, full match)   target weight path      [transform]
    conv\.weight                  ->      conv/kernel             conv
    fc(\d+)\.weight               ->      dense_\1/kernel         linear
    bn\.num_batches_tracked       ->      !ignore

The source side is a Python regular expression that must match the whole
tensor name; the target may use its groups (``\\1``), a numeric group plus or minus a
constant (``\\g<1+1>``: keras-hub numbers some blocks from 1). The transform is one of
``none``, ``transpose``, ``linear``, ``conv``, ``conv_transpose``,
``depthwise``, ``reshape`` (to the target's shape), ``linear_reshape``, a chain of
them applied in order (``linear,reshape``), or ``auto`` (the default: chosen from
``--layout`` and the target layer). ``!ignore`` marks a source tensor as deliberately unused. A target list ``a|b|c`` with
the transform ``split`` (``split,reshape``) gives target ``i`` the ``i``-th of equal slices of
the source along its last axis: a fused query/key/value weight, one slice per target.
``include NAME`` takes in the rules of a shipped map (``include hf-bert``) or of a file beside
this one, tried at that line.
"""

import dataclasses
import re

from mwconv.convert.layout import TRANSFORMS
from mwconv.errors import UsageError

IGNORE = "!ignore"
SPLIT = "split"        # with targets a|b|c: target i gets the i-th slice along the last axis
_OFFSET = re.compile(r"\\g<(\d+)([+-]\d+)>")


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    target: str
    transform: str
    line: int
    origin: str = None      # the included rules file it came from (``include hf-bert``), else None

    @property
    def where(self):
        """``line 3``, or ``line 3 of hf-bert`` for an included rule."""
        return f"line {self.line}" if self.origin is None else f"line {self.line} of {self.origin}"

    @property
    def label(self):
        """How the import report names it: ``rule:3``, ``rule:hf-bert:3``."""
        return f"rule:{self.line}" if self.origin is None else f"rule:{self.origin}:{self.line}"

    def apply(self, name):
        m = self.pattern.fullmatch(name)
        if not m:
            return None
        if self.target == IGNORE:
            return IGNORE

        def offset(g):                   # \g<1+1>: the number group 1 matched, plus one
            value = m.group(int(g.group(1)))
            return str(int(value) + int(g.group(2))) if value is not None and value.isdigit() else g.group(0)
        return m.expand(_OFFSET.sub(lambda g: offset(g).replace("\\", "\\\\"), self.target))


def parse_rules(text, path="<rules>"):
    """Parse rules text; raise UsageError naming the file and line on any mistake."""
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("include ") and "->" not in line:
            rules += _included(line[len("include "):].strip(), path, number)
            continue
        if "->" not in line:
            raise UsageError(f"line {number}: expected 'SOURCE_REGEX -> TARGET [TRANSFORM]'. Received: {raw.strip()!r}",
                             path=path)
        left, right = (s.strip() for s in line.split("->", 1))
        parts = right.split()
        if not left or not parts or len(parts) > 2:
            raise UsageError(f"line {number}: expected 'SOURCE_REGEX -> TARGET [TRANSFORM]'. Received: {raw.strip()!r}",
                             path=path)
        transform = parts[1] if len(parts) == 2 else "auto"
        unknown = [t for t in transform.split(",") if t not in TRANSFORMS and t != SPLIT] if transform != "auto" else []
        if (SPLIT in transform.split(",")) != ("|" in parts[0]):
            raise UsageError(f"line {number}: 'split' and a target list 'a|b|c' go together (one slice of the "
                             f"source per target). Received: {raw.strip()!r}", path=path)
        if unknown:
            raise UsageError(f"line {number}: unknown transform '{unknown[0]}'; known: auto, "
                             f"{', '.join(sorted(TRANSFORMS))} (chain them with ',': linear,reshape)", path=path)
        try:
            pattern = re.compile(left)
        except re.error as e:
            raise UsageError(f"line {number}: invalid regular expression {left!r} ({e})", path=path) from e
        _check_groups(pattern, parts[0], number, path)
        rules.append(Rule(pattern, parts[0], transform, number))
    return rules


def _check_groups(pattern, target, number, path):
    """The target may only use groups the regex has (``\\3`` with two groups fails at parse time)."""
    if target == IGNORE:
        return
    refs = [int(n) for n in re.findall(r"\\(\d+)", target)]
    refs += [int(n) for n in re.findall(r"\\g<(\d+)(?:[+-]\d+)?>", target)]
    bad = [n for n in refs if n > pattern.groups]
    if bad:
        raise UsageError(f"line {number}: the target uses group \\{bad[0]} but the regex has {pattern.groups} "
                         "groups", path=path)


def _included(name, path, number, depth=[0]):
    """The rules of ``include NAME`` (a shipped map such as ``hf-bert``, or a file beside the
    including one), each remembering where it came from; tried where the line stands."""
    import os

    from mwconv.formats.base import read_text_file
    from mwconv.maps import resolve
    found = resolve(name)
    if found == name and not os.path.isabs(name) and os.path.dirname(str(path)):
        found = os.path.join(os.path.dirname(str(path)), name)
    if depth[0] >= 4:
        raise UsageError(f"line {number}: includes nest more than 4 deep (a loop?)", path=path)
    depth[0] += 1
    try:
        text = read_text_file(found, "included rules file", UsageError)
        return [dataclasses.replace(r, origin=r.origin or name) for r in parse_rules(text, str(found))]
    finally:
        depth[0] -= 1


def load_rules(path):
    """The rules of a file, or of a rules file mwconv ships, by name (``hf-bert``: ``mwconv.maps``)."""
    if path is None:
        return []
    from mwconv.formats.base import read_text_file
    from mwconv.maps import resolve
    path = resolve(path)
    return parse_rules(read_text_file(path, "rules file", UsageError), str(path))
