#!/bin/bash
# Run kubemeta's whole test suite: lint, types, unit and end-to-end tests
# (a real rsyslogd, the API emulator over HTTPS). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBEMETA_EXTRAS=test
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh

"$VENV/bin/ruff" check kubemeta tests scripts
"$VENV/bin/mypy" kubemeta
exec "$VENV/bin/python" -m pytest "$@"
