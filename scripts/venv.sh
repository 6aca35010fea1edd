#!/usr/bin/env bash
# Create .venv/ in the repo root with a Python from 3.10 to 3.13 (PYTHON=/path/to/python
# chooses one) and install mwconv with the exact versions of constraints.txt and the test
# tools. Re-installs only when setup.py or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
supported='import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))'
PY=${PYTHON:-}
if [[ -z $PY ]]; then
  for cand in python3 python3.11 python3.12 python3.13 python3.10; do
    if command -v "$cand" >/dev/null && "$cand" -c "$supported" 2>/dev/null; then
      PY=$cand; break
    fi
  done
fi
[[ -n $PY ]] && "$PY" -c "$supported" 2>/dev/null ||
  { echo "mwconv needs Python 3.10 to 3.13 (set PYTHON=/path/to/python3.x)" >&2; exit 2; }
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.mwconv-installed
want=$(cat setup.py constraints.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
fi
