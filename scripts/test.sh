#!/usr/bin/env bash
# Set up the virtual environment with the dev extras, lint, type-check, then run the
# tests twice: against the sources as plain Python (the editable install), and against
# the compiled build a user installs (setup.py; built as a wheel into build/compiled).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k proxy`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
APISHIELD_PURE=1 .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check src tests bench setup.py
.venv/bin/ruff format --check src tests bench setup.py
.venv/bin/mypy
echo "== tests: plain Python (src/)"
.venv/bin/python -m pytest -q "$@"
echo "== tests: compiled build"
bash scripts/build.sh build/compiled
PYTHONPATH=build/compiled .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
