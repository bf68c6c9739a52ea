#!/bin/bash
# Run kubemeta's whole test suite: lint, types, unit and end-to-end tests.
# On a fresh Debian machine it installs what it needs (apt packages when root,
# a virtualenv for Python) and tests against Debian's packaged libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="rsyslog rsyslog-kubernetes openssl python3 python3-venv python3-pip
  python3-kubernetes python3-cachetools python3-tenacity python3-systemd python3-yaml"
if [ "$(id -u)" = 0 ]; then
    missing=$(dpkg-query -W -f='${Status} ${Package}\n' $APT_PACKAGES 2>/dev/null \
              | awk '!/install ok installed/ {print $NF}'; \
              for p in $APT_PACKAGES; do dpkg-query -W "$p" >/dev/null 2>&1 || echo "$p"; done)
    if [ -n "$missing" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $APT_PACKAGES
    fi
fi
for tool in rsyslogd openssl /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: install the Debian packages: $APT_PACKAGES" >&2; exit 1; }
done

# Debian's own python3 and packaged libraries (the floor we support), plus the
# test tools from PyPI.
VENV=${KUBEMETA_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

"$VENV/bin/ruff" check kubemeta tests
"$VENV/bin/mypy" kubemeta
exec "$VENV/bin/python" -m pytest "$@"
