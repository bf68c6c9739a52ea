#!/bin/bash
# kubemeta end to end: the bundled API emulator, a real rsyslogd with the
# shipped snippet, and sample container logs; prints the enriched records.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
exec "$VENV/bin/python" scripts/demo.py "$@"
