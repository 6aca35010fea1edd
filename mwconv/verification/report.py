"""Check results and the verification report (truthy when every check passed)."""

import dataclasses
import json

from mwconv.options import CHECKS

__all__ = ["CHECKS", "FAIL", "PASS", "SKIPPED", "Check", "VerifyReport"]

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
SYMBOL = {PASS: "✓", FAIL: "✗", SKIPPED: "–"}


@dataclasses.dataclass
class Check:
    """One check's outcome. ``message`` is one line; ``problems`` name weights/outputs."""

    name: str
    status: str
    message: str
    problems: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)

    def __bool__(self):
        return self.status != FAIL


@dataclasses.dataclass
class VerifyReport:
    artifact: str
    kind: str
    reference: str
    checks: list
    warnings: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def __bool__(self):
        return all(self.checks)

    @property
    def ok(self):
        return bool(self)

    def raise_for_failure(self):
        """Raise VerificationFailed (exit code 1) naming every failed check and its first problem;
        return the report itself when nothing failed, so calls can be chained.

        >>> verify("serving/", reference="model.keras").raise_for_failure()   # doctest: +SKIP
        """
        failed = [c for c in self.checks if c.status == FAIL]
        if failed:
            from mwconv.errors import VerificationFailed
            detail = "; ".join(f"{c.name}: {c.problems[0] if c.problems else c.message}" for c in failed)
            raise VerificationFailed(f"{len(failed)} checks failed: {detail}", path=self.artifact,
                                     details=self.to_dict())
        return self

    def check(self, name):
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self):
        return {"schema": "mwconv-verify-report/1", "ok": self.ok, "artifact": self.artifact, "kind": self.kind,
                "reference": self.reference, "checks": [dataclasses.asdict(c) for c in self.checks],
                "warnings": list(self.warnings), "notes": list(self.notes)}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)

    def format(self):
        lines = [f"verify {self.artifact} ({self.kind}) against {self.reference}"]
        for c in self.checks:
            lines.append(f"  {SYMBOL[c.status]} {c.name:<10} {c.message}")
            for p in c.problems[:20]:
                lines.append(f"      - {p}")
            if len(c.problems) > 20:
                lines.append(f"      ... and {len(c.problems) - 20} more")
        for n in self.notes:
            lines.append(f"  note: {n}")
        for w in self.warnings:
            lines.append(f"  ! warning: {w}")
        failed = [c.name for c in self.checks if c.status == FAIL]
        lines.append("FAILED: " + ", ".join(failed) if failed else "all checks passed")
        return "\n".join(lines)
