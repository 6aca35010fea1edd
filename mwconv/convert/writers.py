"""Writing artifacts atomically, each with the manifest inside."""

import os
import zipfile

from mwconv.errors import UsageError
from mwconv.manifest import KERAS_MEMBER, dumps
from mwconv.outputs import atomic_output


def save_keras(model, out, manifest, force=False):
    """Write a ``.keras`` file with the manifest as the zip member ``mwconv_manifest.json``."""
    if not str(out).endswith(".keras"):
        raise UsageError("a Keras model file must end with .keras", path=out)
    with atomic_output(out, force=force) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(KERAS_MEMBER, dumps(manifest))
    return os.path.abspath(out)
