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
