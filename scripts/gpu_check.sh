#!/usr/bin/env bash
# The device check on a GPU machine: for every Keras backend installed here
# (tensorflow, torch, jax), sample models are compared on CPU and each GPU with
# TF32 off (the check), then with TF32 on (to show the difference it makes).
# Works where only torch or JAX is installed (mwconv with --no-deps next to Keras).
# Extra arguments go to scripts/gpu_check.py (e.g. --devices cpu:0,cuda:0).
# Exit: 0 all passed; 1 a check failed; 3 no GPU visible under any backend.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
worst=3 ran=0
for backend in tensorflow torch jax; do
  "$PY" -c "import $backend" 2>/dev/null || { echo "== $backend: not installed, skipped"; continue; }
  echo "== $backend"
  KERAS_BACKEND=$backend "$PY" scripts/gpu_check.py "$@"
  code=$?
  ran=1
  if (( code == 1 )); then worst=1; elif (( code == 0 && worst == 3 )); then worst=0; fi
done
(( ran )) || { echo "no Keras backend is installed" >&2; exit 2; }
exit $worst
