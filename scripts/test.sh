#!/usr/bin/env bash
# Set up the virtual environment with the dev extras, then lint, type-check and test.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k proxy`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
