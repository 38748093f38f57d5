#!/usr/bin/env bash
# Install apishield in a virtual environment and run the built-in demo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/apishield demo "$@"
