"""``mwconv export``: look up the format, write the artifact (atomically, the
manifest inside), then verify it as that format unless asked not to. What each
format writes lives in its module under ``mwconv.formats``.

>>> result = export("model.keras", "saved_model", "serving/")   # doctest: +SKIP
>>> result.report.ok, result.bytes
(True, 1052)
"""

import dataclasses
import os

import numpy as np

from mwconv import formats
from mwconv.errors import UsageError
from mwconv.formats.names import EXPORT_FORMATS as FORMATS
from mwconv.formats.names import EXPORT_SUFFIXES
from mwconv.manifest import build_manifest
from mwconv.options import DEFAULT_OPSET, ExportOptions
from mwconv.outputs import check_target


@dataclasses.dataclass
class ExportResult:
    path: str
    format: str
    bytes: int
    weight_bytes: int
    report: object = None     # VerifyReport, or None with --no-verify

    def to_dict(self):
        out = {"path": self.path, "format": self.format, "bytes": self.bytes, "weight_bytes": self.weight_bytes,
               "size_ratio": round(self.bytes / max(self.weight_bytes, 1), 4)}
        out["verification"] = self.report.to_dict() if self.report is not None else None
        return out


def _load(model):
    """(Keras model, the manifest it carries or None) from a model object or a .keras path."""
    from mwconv import modelio
    keras = modelio.keras_api()
    if isinstance(model, keras.Model):
        return model, None
    from mwconv.formats.keras_file import read_keras
    return read_keras(os.fspath(model))


def _manifest(model, previous, hashed=None):
    from mwconv.layers.conversion import whole_frozen_layers
    from mwconv.layers.statistics import model_statistics

    provenance = {w["path"]: w.get("provenance") for w in (previous or {}).get("weights", [])}
    statistics = {path: state for path, (_, state) in model_statistics(model).items()}
    return build_manifest(model, provenance, hashed, statistics, frozen_layers=whole_frozen_layers(model))


def _tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _written_bytes(out):
    """The artifact's bytes, with an ONNX model's external data file beside it."""
    from mwconv.formats.onnx_data import referenced_data
    extra = referenced_data(out) if os.fspath(out).endswith(".onnx") else set()
    return sum(_tree_size(p) for p in (os.fspath(out), *sorted(extra)) if os.path.exists(p))


def export(model, fmt=None, out=None, *, options=None, **fields):
    """Write ``model`` (a .keras path or Keras model) as ``fmt`` to ``out``; verify it unless told not to.

    ``options`` is an ExportOptions; else one is built from ``fmt``, ``out`` and
    ``fields`` (``force``, ``verify``, ``opset``, ``progress``).
    """
    opts = options or ExportOptions(format=fmt, output=None if out is None else os.fspath(out), **fields)
    out = opts.output
    if out is None:
        raise UsageError("export needs an output path (-o)")
    suffix = EXPORT_SUFFIXES[opts.format]
    if suffix and not str(out).endswith(suffix):
        raise UsageError(f"a {opts.format} artifact must end with {suffix}", path=out)
    check_target(out, opts.force)
    formats.check_replaceable(out, opts.format, [] if hasattr(model, "weights") else [model])
    opts.note(f"loading {model if not hasattr(model, 'weights') else 'the model'}")
    keras_model, previous = _load(model)
    entries = None
    if opts.verify:        # verify's summary of the model hashes each weight once; the manifest reuses it
        from mwconv.verification.partition import entries_from_model
        entries = entries_from_model(keras_model)
    manifest = _manifest(keras_model, previous, entries)
    weight_bytes = sum(int(np.prod(w["shape"], dtype=np.int64)) * np.dtype(w["dtype"]).itemsize
                       for w in manifest["weights"])
    opts.note(f"writing {opts.format} to {out}")
    formats.by_name(opts.format).write(keras_model, out, manifest, opts)
    result = ExportResult(os.fspath(out), opts.format, _written_bytes(out), weight_bytes)
    if opts.verify:
        opts.note("verifying (partition, outputs)")
        from mwconv.verification import verify as run_verify
        from mwconv.verification.reference import Reference
        loaded = not hasattr(model, "weights")          # we loaded it from a path: verify may release it
        reference = Reference(keras_model, os.fspath(model) if loaded else f"in-memory model '{keras_model.name}'",
                              path=os.fspath(model) if loaded else None, entries=entries)
        keras_model = None          # the reference holds the model until it has summarised it
        result.report = run_verify(out, reference, checks=["partition", "outputs"], format_name=opts.format)
    return result


__all__ = ["DEFAULT_OPSET", "FORMATS", "ExportResult", "export"]
