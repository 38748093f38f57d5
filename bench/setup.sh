#!/usr/bin/env bash
# Install what bench/proxy_bench.py needs on Debian/Ubuntu: nginx, the ModSecurity v3
# nginx module (libmodsecurity), the OWASP Core Rule Set and wrk. Run as root.
# The nginx package starts a system nginx on port 80; this script stops and disables it,
# because the benchmark runs its own instances on loopback ports.
set -euo pipefail

if [[ ${EUID} -ne 0 ]]; then
    echo "run as root: sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y nginx libnginx-mod-http-modsecurity modsecurity-crs wrk

if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl disable --now nginx || true
else
    service nginx stop || true
fi

for path in /usr/share/nginx/modules/ngx_http_modsecurity_module.so \
    /etc/nginx/modsecurity.conf /etc/modsecurity/crs/crs-setup.conf \
    /usr/share/modsecurity-crs/rules; do
    if [[ ! -e ${path} ]]; then
        echo "missing after install: ${path}" >&2
        exit 1
    fi
done
echo "prerequisites installed; run: python bench/proxy_bench.py"
