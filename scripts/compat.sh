#!/usr/bin/env bash
# The version matrix: for each set, a virtual environment at .venv-compat/SET with that
# set's versions, then the main job (examples/quickstart.toml, in a temporary folder) and the
# fast tests of COMPAT_TESTS in it. Sets:
#   oldest  Python 3.11, the oldest releases setup.py admits (compat/oldest.txt)
#   newest  Python 3.11, the newest releases setup.py admits (no constraints)
#   py310   Python 3.10 with constraints.txt (its older pins)
#   py313   Python 3.13 with constraints.txt (TensorFlow 2.20: 2.21 has no 3.13 wheel)
# Usage: bash scripts/compat.sh [SET...]   (default: all four). Exit non-zero if any set fails.
set -uo pipefail
cd "$(dirname "$0")/.."
sets=("$@")
[[ ${#sets[@]} -gt 0 ]] || sets=(oldest newest py310 py313)
tests=${COMPAT_TESTS:-"tests/test_import.py tests/test_export.py tests/test_verify.py tests/test_training.py tests/test_security.py tests/test_compat.py tests/test_cli_basics.py"}
find_python() {   # a working pythonX.Y: on PATH, else under pyenv's or uv's versions
  local ver=$1 cand
  for cand in "python$ver" "$HOME"/.pyenv/versions/"$ver"*/bin/python"$ver" \
              "$HOME"/.local/share/uv/python/cpython-"$ver"*/bin/python"$ver"; do
    if "$cand" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$ver'.split('.'))))" 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}
status=0
summary=()
for set in "${sets[@]}"; do
  case $set in
    oldest) ver=3.11; pins=(-c compat/oldest.txt) ;;
    newest) ver=3.11; pins=() ;;
    py310)  ver=3.10; pins=(-c constraints.txt) ;;
    py313)  ver=3.13; pins=(-c constraints.txt) ;;
    *) echo "unknown set '$set' (oldest, newest, py310, py313)" >&2; exit 2 ;;
  esac
  if ! py=$(find_python $ver); then
    summary+=("$set: skipped (no working python$ver here)"); continue
  fi
  venv=.venv-compat/$set
  start=$SECONDS
  echo "== $set: $($py --version) in $venv"
  [[ -x $venv/bin/python ]] || "$py" -m venv "$venv"
  if ! { "$venv/bin/python" -m pip install --quiet --upgrade pip &&
         "$venv/bin/python" -m pip install --quiet "${pins[@]}" -e ".[test]"; }; then
    summary+=("$set: FAILED to install"); status=1; continue
  fi
  versions=$("$venv/bin/python" -c 'import importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in ("tensorflow", "tf-keras", "keras", "numpy", "onnx", "onnxruntime", "tf2onnx", "h5py")))')
  work=$(mktemp -d)
  mkdir -p "$work/examples" && cp examples/quickstart.toml "$work/examples/"
  if "$venv/bin/mwconv" run "$work/examples/quickstart.toml" -q; then job=ok; else job=FAILED; status=1; fi
  rm -rf "$work"
  # shellcheck disable=SC2086
  if "$venv/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider $tests > "$venv/tests.log" 2>&1; then
    result="tests ok ($(tail -n 1 "$venv/tests.log" | tr -d '='))"
  else
    result="tests FAILED ($(tail -n 1 "$venv/tests.log" | tr -d '='); see $venv/tests.log)"; status=1
  fi
  summary+=("$set: main job $job, $result, $((SECONDS - start)) s -- $versions")
done
printf '%s\n' "${summary[@]}"
exit $status
