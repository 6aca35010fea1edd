import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    """The fixtures directory, written once per test session by ``write_fixtures``."""
    from mwconv.fixtures import write_fixtures

    directory = tmp_path_factory.mktemp("samples")
    write_fixtures(directory, seed=0, force=True)
    return directory


@pytest.fixture(scope="session")
def every_kind(tmp_path_factory):
    """The every-kind mixed model saved as .keras and exported to every format once per session:
    {"model": keras model, "keras_src": path, format: ExportResult}."""
    from mwconv.convert.exporter import export
    from tests.models import every_kind as build

    folder = tmp_path_factory.mktemp("every_kind")
    model = build()
    src = folder / "model.keras"
    model.save(src)
    out = {"model": model, "keras_src": src, "folder": folder}
    for fmt, name in (("saved_model", "serving"), ("keras", "exported.keras"), ("weights_h5", "exported.weights.h5"),
                      ("onnx", "exported.onnx")):
        out[fmt] = export(src, fmt, folder / name)
    return out


@pytest.fixture(scope="session", autouse=True)
def _no_state_file_left_in_the_repo():
    """In-process CLI imports record the last import in the current folder (the repo root
    under pytest); remove that record afterwards unless it was there before."""
    from mwconv.workspace import STATE_FILE

    existed = os.path.exists(STATE_FILE)
    yield
    if not existed and os.path.exists(STATE_FILE):
        os.remove(STATE_FILE)
