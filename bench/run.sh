#!/bin/bash
# kubemeta's benchmark: installs what it needs as scripts/demo.sh does, then
# prints the table (about 15 minutes; --quick checks it works in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
exec "$VENV/bin/python" bench/bench.py "$@"
