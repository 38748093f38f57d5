# Sourced by the other scripts: make sure .venv exists, installing Debian's venv
# support first when the system Python lacks it (a fresh Debian has no python3-venv).
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      "$PYTHON" -m venv .venv
    else
      echo "cannot create a virtual environment: install python3-venv (as root: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
