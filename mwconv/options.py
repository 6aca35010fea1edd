"""Options of import, export and verify, each one typed object validated in one
place. The command line, pipeline files and Python callers all build these;
the pipeline schema is derived from the fields (``pipeline_schema``).

>>> ExportOptions(format="onnx", opset=13).opset
13
>>> ExportOptions(format="tiff")
Traceback (most recent call last):
...
mwconv.errors.UsageError: --format must be one of saved_model, keras, weights_h5, onnx, safetensors. Received: 'tiff'
"""

import dataclasses

from mwconv.errors import UsageError
from mwconv.formats.names import EXPORT_FORMATS

DEFAULT_OPSET = 17
LAYOUTS = ("keras", "torch", "onnx", "auto")
CHECKS = ("partition", "outputs", "train-step", "devices", "source", "drift")


def _field(default=None, kind=None, pipeline=True, key=None):
    """A field; ``kind`` is how a pipeline file writes it ("path", str, int, float, bool, [str]),
    ``key`` its name there when that differs."""
    factory = {"default_factory": tuple} if default == () else {"default": default}
    return dataclasses.field(**factory, metadata={"kind": kind, "pipeline": pipeline, "key": key})


@dataclasses.dataclass
class ImportOptions:
    """What ``mwconv import`` does with a source (see the README's Import section)."""

    model: object = _field(kind=str)            # .keras path, module:function, file.py:function, keras.Model
    rules: object = _field(kind="path", key="map")   # rules file path (--map), or a list of rules
    layout: str = _field("auto", str)
    freeze: tuple = _field((), [str])
    train: tuple = _field((), [str])
    allow_missing: bool = _field(False, bool)
    allow_unused: bool = _field(False, bool)
    allow_nonfinite: bool = _field(False, bool)
    allow_whole_layer_freeze: bool = _field(False, bool)   # custom layers that cannot hold a flag per weight
    update_statistics: tuple = _field((), [str])   # frozen BatchNormalization layers whose statistics update
    channels_last: bool = _field(False, bool)
    output: str = _field(kind="path")
    force: bool = _field(False, bool, pipeline=False)   # a pipeline's [options] force

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}. Received: {self.layout!r}")
        self.freeze, self.train = tuple(self.freeze or ()), tuple(self.train or ())
        self.update_statistics = tuple(self.update_statistics or ())


@dataclasses.dataclass
class ExportOptions:
    """Which artifact ``mwconv export`` writes, and how."""

    format: str = _field(kind=str)
    output: str = _field(kind="path")
    opset: int = _field(DEFAULT_OPSET, int)
    force: bool = _field(False, bool, pipeline=False)
    verify: bool = _field(True, bool, pipeline=False)
    progress: object = _field(pipeline=False)   # callable(text) for one-line notes, or None

    def __post_init__(self):
        if self.format not in EXPORT_FORMATS:
            raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)}. Received: {self.format!r}")
        if not isinstance(self.opset, int) or isinstance(self.opset, bool) or not 7 <= self.opset <= 30:
            raise UsageError(f"--opset must be an ONNX opset from 7 to 30. Received: {self.opset!r}")

    def note(self, text):
        if self.progress:
            self.progress(text)


@dataclasses.dataclass
class VerifyOptions:
    """Which checks ``mwconv verify`` runs, on which inputs, with which tolerances."""

    reference: object = _field(pipeline=False)  # .keras / full-model .h5 path, keras.Model, or None
    inputs: str = _field(kind="path")
    samples: int = _field(4, int)
    seed: int = _field(0, int)
    atol: float = _field(kind=float)
    rtol: float = _field(kind=float)
    checks: tuple = _field(kind=[str])
    require: tuple = _field((), [str])
    devices: tuple = _field(kind=[str])
    source: str = _field(kind="path")
    baseline: object = _field(kind="path")      # the imported .keras (or a Keras model) for the drift check
    allow_unfrozen: tuple = _field((), [str])   # globs of weights a later training stage unfroze

    def __post_init__(self):
        self.allow_unfrozen = tuple(self.allow_unfrozen or ())
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise UsageError(f"--samples must be a positive integer. Received: {self.samples!r}")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise UsageError(f"--{name} must be a number >= 0. Received: {value!r}")
        self.checks = tuple(self.checks) if self.checks else CHECKS
        self.require = tuple("devices" if r == "gpu" else r for r in self.require or ())
        unknown = [c for c in self.checks + self.require if c not in CHECKS]
        if unknown:
            raise UsageError(f"unknown check {unknown[0]!r}; checks are {', '.join(CHECKS)} (and gpu for --require)")
        self.devices = tuple(self.devices) if self.devices else None


def pipeline_schema(cls):
    """``{pipeline key: (field name, kind)}`` of the fields a pipeline file may set for ``cls``.

    >>> pipeline_schema(ExportOptions)
    {'format': ('format', <class 'str'>), 'output': ('output', 'path'), 'opset': ('opset', <class 'int'>)}
    """
    return {f.metadata["key"] or f.name: (f.name, f.metadata["kind"])
            for f in dataclasses.fields(cls) if f.metadata.get("pipeline")}
