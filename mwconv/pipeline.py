"""``mwconv run``: a whole import -> export(s) -> verify pipeline described in
a TOML file. Relative paths resolve against the pipeline file.

>>> result = run_pipeline("examples/quickstart.toml")   # doctest: +SKIP
>>> result.ok, result.exit_code
"""

import dataclasses
import os
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from mwconv.errors import MwconvError, UsageError
from mwconv.options import ExportOptions, ImportOptions, VerifyOptions, pipeline_schema

# key -> kind per table ([[export]] is a list of tables); import, export and verify come
# from the fields of their option classes, so every option is settable here
SCHEMA = {
    "fixtures": {"directory": "path", "seed": int},
    "source": {"path": "path"},
    "import": {key: kind for key, (_, kind) in pipeline_schema(ImportOptions).items()},
    "export": {key: kind for key, (_, kind) in pipeline_schema(ExportOptions).items()},
    "verify": {key: kind for key, (_, kind) in pipeline_schema(VerifyOptions).items()},
    "options": {"force": bool},
}
REQUIRED = {"source": ["path"], "import": ["output"], "export": ["format", "output"]}


@dataclasses.dataclass
class PipelineResult:
    path: str
    exit_code: int = 0
    error: str = None
    imported: str = None
    import_report: dict = None
    exports: list = dataclasses.field(default_factory=list)
    verifications: list = dataclasses.field(default_factory=list)   # VerifyReport objects

    @property
    def ok(self):
        return self.exit_code == 0

    def to_dict(self):
        return {"pipeline": self.path, "ok": self.ok, "exit_code": self.exit_code, "error": self.error,
                "imported": self.imported, "import": self.import_report, "exports": self.exports,
                "verify": [r.to_dict() for r in self.verifications]}

    def format(self):
        lines = [f"pipeline {self.path}"]
        if self.imported:
            lines.append(f"  imported -> {_rel(self.imported)}")
        for e in self.exports:
            lines.append(f"  exported {e['format']} -> {_rel(e['path'])} ({e['size_ratio']:.3f} x weight bytes)")
        for r in self.verifications:
            text = r.format().replace(r.artifact, _rel(r.artifact)).replace(r.reference, _rel(r.reference))
            lines.append("  " + text.replace("\n", "\n  "))
        lines.append(f"  result: {'ok' if self.ok else 'FAILED'} (exit {self.exit_code})"
                     + (f": {self.error}" if self.error else ""))
        return "\n".join(lines)


def _rel(path):
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


def _line_of(text, key):
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def _check_value(value, kind):
    if kind == "path" or kind is str:
        return isinstance(value, str)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, list):
        return isinstance(value, list) and all(isinstance(v, kind[0]) for v in value)
    return isinstance(value, kind)


def _type_name(kind):
    if kind == "path":
        return "a path (string)"
    if isinstance(kind, list):
        return f"a list of {kind[0].__name__}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[kind]


def _check_entry(table, label, entry, path, base, where):
    """Check one table's keys and value types; resolve its paths against ``base``."""
    if not isinstance(entry, dict):
        raise UsageError(f"[{label}] must be a table", path=path)
    for key, value in entry.items():
        if key not in SCHEMA[table]:
            raise UsageError(f"unknown key '{label}.{key}'{where(key)}; known in [{table}]: "
                             f"{', '.join(SCHEMA[table])}", path=path)
        kind = SCHEMA[table][key]
        if not _check_value(value, kind):
            raise UsageError(f"key '{label}.{key}'{where(key)} must be {_type_name(kind)}, "
                             f"got {type(value).__name__} {value!r}", path=path)
        if kind == "path":
            entry[key] = os.path.normpath(os.path.join(base, value))
    for key in REQUIRED.get(table, []):
        if key not in entry:
            raise UsageError(f"[{label}] needs the key '{key}'", path=path)


def load_pipeline(path):
    """Parse and validate a pipeline file; resolve relative paths. UsageError names the key and line."""
    from mwconv.formats.base import read_text_file

    path = os.fspath(path)
    text = read_text_file(path, "pipeline file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"not valid TOML ({e})", path=path) from e
    base = os.path.dirname(os.path.abspath(path))

    def where(key):
        line = _line_of(text, key)
        return f" (line {line})" if line else ""

    for table in doc:
        if table not in SCHEMA:
            raise UsageError(f"unknown table [{table}]{where(table)}; known: {', '.join(SCHEMA)}", path=path)
    if not isinstance(doc.get("export", []), list):
        raise UsageError("exports are written as [[export]] tables", path=path)
    for table, body in doc.items():
        entries = body if table == "export" else [body]
        for i, entry in enumerate(entries):
            _check_entry(table, f"export[{i}]" if table == "export" else table, entry, path, base, where)
    for table in ("source", "import"):
        if table not in doc:
            raise UsageError(f"the pipeline needs a [{table}] table", path=path)
    import_table = doc["import"]
    model = import_table.get("model")
    if model and ":" in model:  # module:function or file.py:function: resolve a file path
        module, _, func = model.rpartition(":")
        if module.endswith(".py"):
            import_table["model"] = f"{os.path.normpath(os.path.join(base, module))}:{func}"
    elif model:
        import_table["model"] = os.path.normpath(os.path.join(base, model))
    return doc


def run_pipeline(path, progress=None):
    """Run one pipeline file; return a PipelineResult (never raises for expected failures)."""
    result = PipelineResult(os.fspath(path))
    try:
        _run(load_pipeline(path), result, progress)
    except MwconvError as e:
        result.exit_code, result.error = e.exit_code, str(e)
    return result


def _options(cls, table, **extra):
    """An option object from a pipeline table (keys as the file writes them)."""
    schema = pipeline_schema(cls)
    return cls(**{schema[key][0]: value for key, value in table.items()}, **extra)


def _run(doc, result, progress):
    from mwconv.convert.exporter import export
    from mwconv.convert.importer import import_weights
    from mwconv.outputs import check_target
    from mwconv.verification import verify

    force = doc.get("options", {}).get("force", False)
    note = progress or (lambda text: None)
    # every option object first, so a bad value stops the pipeline before anything is written
    imp = _options(ImportOptions, doc["import"], force=force)
    exports = [_options(ExportOptions, e, force=force, verify=False, progress=progress) for e in doc.get("export", [])]
    trusted = {} if "source" in doc.get("verify", {}) else {"source": doc["source"]["path"]}   # named here
    checks = _options(VerifyOptions, doc.get("verify", {}), reference=imp.output, **trusted)
    from mwconv.formats import check_replaceable
    for target, kind in [(imp.output, "keras")] + [(e.output, e.format) for e in exports]:
        check_target(target, force)
        check_replaceable(target, kind, [doc["source"]["path"]])
    if "fixtures" in doc:
        from mwconv.fixtures import write_fixtures
        note(f"writing sample sources to {doc['fixtures']['directory']}")
        write_fixtures(doc["fixtures"]["directory"], seed=doc["fixtures"].get("seed", 0), force=True)
    note(f"reading {doc['source']['path']}, injecting into the target model")
    _, report = import_weights(doc["source"]["path"], options=imp)
    result.import_report, result.imported = report.to_dict(), imp.output
    for e in exports:
        note(f"exporting {e.format} to {e.output}")
        os.makedirs(os.path.dirname(e.output) or ".", exist_ok=True)
        result.exports.append(export(imp.output, options=e).to_dict())
    for e in exports:
        note(f"verifying {e.output}")
        result.verifications.append(verify(e.output, options=checks))
    if not all(result.verifications):
        failed = [f"{r.artifact}: {', '.join(c.name for c in r.checks if c.status == 'fail')}"
                  for r in result.verifications if not r]
        result.exit_code, result.error = 1, "verification failed (" + "; ".join(failed) + ")"
