#!/bin/bash
# How soon after an API outage a pod first seen during it is labelled, per fault:
# installs what it needs as scripts/demo.sh does, then prints the table (about
# 10 minutes; --quick checks it works in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
exec "$VENV/bin/python" bench/recovery.py "$@"
