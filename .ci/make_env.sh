#!/usr/bin/env bash
# Creates (or re-uses) one pinned virtual environment.
#   .ci/make_env.sh NAME VENV_ROOT PYTHON
# The environment is re-used while a stamp holding the hash of its constraint
# file (and of setup.cfg) matches; any change rebuilds it from scratch.
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
if ! command -v "$python" >/dev/null; then
  echo "[$name] needs $python (Python 3.11) on PATH; install it or pass PYTHON=..." >&2
  exit 2
fi
echo "[$name] building $venv from $constraints (a few minutes the first time)"
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
