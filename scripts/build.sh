#!/usr/bin/env bash
# Build apishield as a user installs it (engine modules compiled by mypyc and its C
# module, setup.py)
# and unpack the wheel into DIR (default build/compiled), for
# `PYTHONPATH=DIR .venv/bin/python ...`. Checks that the build really is compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/compiled}
. scripts/venv.sh
# setuptools keeps mypyc's C files and objects in build/: after the list of compiled
# modules changes they would link a stale shared module, so every build starts clean
rm -rf build/wheel "${dir}" build/lib.* build/temp.* build/bdist.* build/__native* build/apishield
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps . -w build/wheel
mkdir -p "${dir}"
.venv/bin/python -m zipfile -e build/wheel/apishield-*.whl "${dir}"
PYTHONPATH=${dir} .venv/bin/python -c '
import os, sys
import apishield
if not apishield.COMPILED or not os.path.abspath(apishield.__file__).startswith(sys.argv[1]):
    sys.exit(f"build: {apishield.__file__} is not a compiled build in {sys.argv[1]}")
import apishield._speedups  # the C module
' "$(cd "${dir}" && pwd)"
echo "compiled build in ${dir}"
