"""A comparison's rows (one per paired tensor, in the source's graph order), its first
divergence, the text table and the JSON document (schema ``mwconv-compare-report/1``,
documented in the README)."""

import dataclasses
import json

from mwconv.errors import printable, shorten

SCHEMA = "mwconv-compare-report/1"
FAILED = ("diverges", "inherits", "shape mismatch")
ROW_FIELDS = ("index", "source", "op", "tensor", "keras_layer", "layer", "built", "inputs", "shape", "model_shape", "layout",
              "status", "max_abs", "max_rel", "inputs_max_abs", "atol", "rtol", "noise_floor", "factor", "scale")


class Row:
    """One paired tensor. ``status``: ok, diverges (its inputs agree, it does not), inherits
    (an input already diverged), shape mismatch, or unpaired (the model lacks the layer)."""

    def __init__(self, index, pair, shape):
        self.index, self.pair, self.shape = index, pair, shape
        self.status, self.layout, self.model_shape = "unpaired", None, None
        self.max_abs = self.max_rel = self.inputs_max_abs = None
        self.atol = self.rtol = self.noise_floor = self.scale = None
        self.factor = 1.0

    @property
    def failed(self):
        return self.status in FAILED

    @property
    def allowed(self):
        """The largest abs error the tolerance admits at this tensor's largest value."""
        return None if self.atol is None else self.atol + self.rtol * (self.scale or 0.0)

    def to_dict(self):
        p = self.pair
        values = {"index": self.index, "source": p.source, "op": p.op, "tensor": p.tensor, "keras_layer": p.keras_layer, "layer": p.layer,
                  "built": list(p.built), "inputs": list(p.inputs), "shape": self.shape,
                  "model_shape": self.model_shape, "layout": self.layout, "status": self.status,
                  "max_abs": self.max_abs, "max_rel": self.max_rel, "inputs_max_abs": self.inputs_max_abs,
                  "atol": self.atol, "rtol": self.rtol, "noise_floor": self.noise_floor, "factor": self.factor,
                  "scale": self.scale}
        return {k: values[k] for k in ROW_FIELDS}


def _g(value):
    return "-" if value is None else f"{value:.3g}"


@dataclasses.dataclass
class Comparison:
    source: str
    model: str
    source_kind: str
    rows: list
    tolerance: dict
    probe: dict
    notes: list = dataclasses.field(default_factory=list)

    def __bool__(self):
        return not any(r.failed for r in self.rows)

    @property
    def ok(self):
        return bool(self)

    @property
    def first_divergence(self):
        return next((r for r in self.rows if r.status in ("diverges", "shape mismatch")), None)

    def describe_divergence(self):
        """One line naming the first diverging layer, its op or class, its inputs' error and its own."""
        r = self.first_divergence
        if r is None:
            return f"no divergence: {sum(1 for x in self.rows if x.status == 'ok')} paired tensors agree"
        own = (f"shape {tuple(r.model_shape or ())} vs the source's {tuple(r.shape)}" if r.status == "shape mismatch"
               else f"max abs error {_g(r.max_abs)} (tolerance {_g(r.allowed)} at its largest value "
                    f"{_g(r.scale)}, noise floor {_g(r.noise_floor)}), max rel error {_g(r.max_rel)}")
        others = [b for b in r.pair.built if b != r.pair.keras_layer]
        built = f" (with {shorten(others, 4)})" if others else ""
        return (f"first divergence: layer '{printable(r.pair.keras_layer)}'{built}, from {self.source_kind} "
                f"{r.pair.op} '{printable(r.pair.source)}' (tensor {r.index + 1} of {len(self.rows)}): its inputs' "
                f"max abs error {_g(r.inputs_max_abs)}, its own {own}")

    def to_dict(self, all_rows=True):
        first = self.first_divergence
        return {"schema": SCHEMA, "ok": self.ok, "source": self.source, "model": self.model,
                "source_kind": self.source_kind, "probe": dict(self.probe), "tolerance": dict(self.tolerance),
                "paired": sum(1 for r in self.rows if r.status != "unpaired"),
                "diverging": sum(1 for r in self.rows if r.failed),
                "first_divergence": None if first is None else first.to_dict(),
                "message": self.describe_divergence(), "notes": list(self.notes),
                "rows": [r.to_dict() for r in self.rows]}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)

    def format(self, limit=20):
        lines = [f"compare {self.source} ({self.source_kind}) with {self.model}: "
                 f"{sum(1 for r in self.rows if r.status != 'unpaired')} tensors paired"]
        failing = [r for r in self.rows if r.failed]
        if failing:
            lines.append(f"  {'#':>4}  {'status':<14} {'max abs':>9} {'allowed':>9} {'floor':>9}  layer (source op)")
        for r in failing[:limit]:
            lines.append(f"  {r.index + 1:>4}  {r.status:<14} {_g(r.max_abs):>9} {_g(r.allowed):>9} "
                         f"{_g(r.noise_floor):>9}  {printable(r.pair.keras_layer)} ({r.pair.op} "
                         f"'{printable(r.pair.source)}')")
        if len(failing) > limit:
            lines.append(f"  ... and {len(failing) - limit} more past tolerance (--json lists every row)")
        for n in self.notes:
            lines.append(f"  note: {n}")
        lines.append(self.describe_divergence())
        return "\n".join(lines)
