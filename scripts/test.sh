#!/bin/bash
# Run kubemeta's whole test suite: lint, types, unit and end-to-end tests
# (a real rsyslogd, the API emulator over HTTPS), then the Debian package stage:
# build, lintian, install, the suite again against the installed package, purge.
# Installs what it needs. With pytest arguments, runs only those tests.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBEMETA_EXTRAS=test
# What building, checking and testing the Debian package and the Puppet module need.
KUBEMETA_APT_EXTRA="debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools
  lintian autopkgtest man-db python3-pytest puppet"
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh

if [ $# -gt 0 ]; then
    exec "$VENV/bin/python" -m pytest "$@"
fi
"$VENV/bin/ruff" check kubemeta tests scripts bench
MYPYPATH=tests "$VENV/bin/mypy" kubemeta bench/bench.py bench/trivial.py bench/reference.py
"$VENV/bin/python" -m pytest
exec ./scripts/package-test.sh
