#!/usr/bin/env bash
# The main job on built-in sample data: sample sources -> import (frozen
# pretrained part, trainable head) -> SavedModel, .keras and ONNX -> verify.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
exec .venv/bin/mwconv run examples/quickstart.toml "$@"
