#!/usr/bin/env bash
# The main job on built-in sample data: write the sample sources, inspect each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
.venv/bin/mwconv fixtures samples/ --force
for f in samples/*; do
  case $f in *.io.npz|*.data) continue ;; esac
  echo
  .venv/bin/mwconv inspect "$f"
done
