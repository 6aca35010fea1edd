"""One object per file format: what mwconv knows about it, in one place."""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Format:
    """A file format mwconv reads, and perhaps writes and verifies.

    ``sniff(path, head)`` says from the first 16 bytes (``head``) whether the file
    is in this format; ``reader`` and ``artifact`` are ``"module:Class"`` names,
    imported when first used, so detection stays light. ``write(model, out,
    manifest, options)`` writes an artifact atomically (export formats only).
    """

    name: str                       # "onnx"; export formats use the names of formats/names.py
    title: str                      # "ONNX protobuf", for messages
    extensions: tuple               # file extensions that may hold this format (lower case)
    sniff: object                   # (path, head) -> bool; None for folders (SavedModel)
    reader: str                     # "module:Class" of the Source
    manifest_location: str          # where the mwconv manifest lives, for people
    records_trainable: bool = False     # whether the format itself records trainable flags
    tolerance: str = "exact"        # comparison class of its outputs: "exact" or "onnx"
    artifact: str = None            # "module:Class" of the verification artifact, if it is one
    write: object = None            # writer, if it is an export format

    def open_source(self, path):
        """The format's lazy reader for ``path``."""
        return _resolve(self.reader)(path)

    def open_artifact(self, path, reference_model=None):
        """The artifact under verification at ``path``."""
        if self.artifact is None:
            from mwconv.errors import InputRejected
            raise InputRejected(f"a {self.name} file is not an artifact mwconv verifies (SavedModel, .keras, "
                                ".weights.h5, .safetensors, .onnx)", path=path)
        return _resolve(self.artifact)(path, reference_model)


def _resolve(spec):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)
