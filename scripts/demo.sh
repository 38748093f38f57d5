#!/usr/bin/env bash
# Install apishield in a virtual environment and run the built-in demo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
# A regular install, as a user's: the per-request modules compiled (setup.py)
.venv/bin/python -m pip install -q --disable-pip-version-check .
exec .venv/bin/apishield demo "$@"
