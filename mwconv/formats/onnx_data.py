"""An ONNX model and its external data commit as one unit. Each run's data file has a name
of its own, ``OUT.<run>.data`` (its staging folder's), so committing it replaces nothing;
the model, committed after it in one step, always points at the data written with it. After
the commit, :func:`sweep_data` removes the data files that the committed model does not
point at: a replaced model's, or a killed run's."""

import os
import re

from mwconv.outputs import staging_folders


def data_name(target, staged):
    """``model.onnx.<run>.data``: each run's data file has a name of its own (its staging
    folder's), so committing it replaces nothing, and the model, committed after it in one
    step, always points at the data written with it."""
    run = os.path.basename(os.path.dirname(staged)).split(".")[-2]
    return f"{os.path.basename(target)}.{run}.data"


def referenced_data(model_path):
    """The external data files that the ONNX model at ``model_path`` points at."""
    from mwconv.formats.onnx_wire import lean_load
    try:
        model, _ = lean_load(model_path)          # embedded weights stay in the file, not in memory
    except Exception:  # noqa: BLE001 - unreadable (or absent): it points at nothing
        return set()
    folder = os.path.dirname(os.path.abspath(model_path))
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    return {os.path.join(folder, e.value) for t in tensors for e in t.external_data if e.key == "location"}


def sweep_data(target):
    """Remove the ``.data`` files of ``target`` that its committed model does not point at:
    a replaced model's, or a killed run's. A run still writing (its staging folder held by
    a live process) keeps its file."""
    target = os.path.abspath(target)
    folder, base = os.path.dirname(target), os.path.basename(target)
    keep = referenced_data(target)
    live = {name.split(".")[-2] for name in staging_folders(target, live=True)}
    for name in os.listdir(folder):
        if not (name.startswith(base + ".") and name.endswith(".data")):
            continue
        run = name[len(base) + 1:-len(".data")]
        path = os.path.join(folder, name)
        ours = run == "" or re.fullmatch(r"[a-z0-9_]{8}", run)        # OUT.data, or a run's OUT.<run>.data
        if ours and path not in keep and run not in live:
            try:
                os.remove(path)
            except OSError:
                pass


