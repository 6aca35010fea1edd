#!/usr/bin/env bash
# The test suite, in .venv/. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
# Two workers (pytest-xdist), each test file in one of them so that its module fixtures are
# built once; MWCONV_TEST_WORKERS=0 runs in one process.
exec .venv/bin/python -m pytest -n "${MWCONV_TEST_WORKERS:-2}" --dist loadfile "$@"
