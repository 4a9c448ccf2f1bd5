#!/usr/bin/env bash
# Creates (or re-uses) one pinned virtual environment.
#   .ci/make_env.sh NAME VENV_ROOT PYTHON
# The environment is re-used while a stamp holding the hash of its constraint
# files (and of setup.cfg) matches; any change rebuilds it from scratch.
set -euo pipefail
name=$1 root=$2 python=$3
constraints=constraints/$name.txt
venv=$root/$name
stamp=$venv/.od_guard-stamp
nodeps=constraints/$name-nodeps.txt
want=$(cat "$constraints" setup.cfg $( [ -f "$nodeps" ] && echo "$nodeps" ) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "[$name] environment up to date ($venv)"
  exit 0
fi

# An interpreter that runs: `python3.12` may be a pyenv shim that fails unless
# that version is selected, so a pythonX.Y that does not run is looked for where
# pyenv, the deadsnakes PPA and source builds put it (the newest X.Y.* wins).
runs() { "$1" -c "import sys" >/dev/null 2>&1; }
resolve_python() {
  local want=$1
  if runs "$want"; then command -v "$want" || echo "$want"; return 0; fi
  local minor=${want#python}
  [[ $minor =~ ^3\.[0-9]+$ ]] || return 1
  local candidate
  for candidate in \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$minor".*/bin/"$want" 2>/dev/null | sort -V -r) \
      "/usr/local/bin/$want" "/usr/bin/$want"; do
    if [ -x "$candidate" ] && runs "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 1
}
if ! resolved=$(resolve_python "$python"); then
  echo "[$name] needs $python: it is not on PATH or does not run (a pyenv shim for a" \
    "version that is not selected?), and none was found under" \
    "${PYENV_ROOT:-$HOME/.pyenv}/versions, /usr/local/bin or /usr/bin." \
    "Install it (e.g. \`pyenv install ${python#python}\`) or pass its path:" \
    "make env-$name $( [ "$name" = modern ] && echo MODERN_PYTHON || echo PYTHON )=/path/to/$python" >&2
  exit 2
fi
python=$resolved
echo "[$name] building $venv from $constraints with $python (a few minutes the first time)"
rm -rf "$venv"
"$python" -m venv "$venv"
# This machine's pip config adds local wheel folders that warn once per package.
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
quiet "$venv/bin/python" -m pip install -q --upgrade pip
quiet "$venv/bin/python" -m pip install -q -r "$constraints"
if [ "$name" != lint ]; then
  # compat mode: a plain .pth entry, no import-hook finder to load at start-up.
  quiet "$venv/bin/python" -m pip install -q --no-deps -e . --config-settings editable_mode=compat
fi
"$venv/bin/python" -m pip check
if [ -f "$nodeps" ]; then
  # Deliberately without dependencies (see the file): pip check would object.
  quiet "$venv/bin/python" -m pip install -q --no-deps -r "$nodeps"
fi
echo "$want" > "$stamp"
echo "[$name] ready"
