#!/bin/bash
# Run kubemeta's whole test suite on each platform it supports, each from a
# clean start, printing each stage's time and each platform's pass counts:
#   1. lint and types;
#   2. bookworm, Debian's packaged libraries: unit and end-to-end tests (a real
#      rsyslogd, the API emulator over HTTPS, Debian's mmkubernetes);
#   3. PyPI: the newest release of every dependency in a clean virtualenv;
#   4. the bookworm .deb: build, lintian, install, the end-to-end suite against
#      the installed package, upgrade, purge, Puppet;
#   5. the trixie .deb: the same in a Debian trixie root (Python 3.13, rsyslog
#      8.2504), the whole suite against the installed package.
# Installs what it needs. With pytest arguments, runs only those tests (bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
KUBEMETA_EXTRAS=test
# What building, checking and testing the Debian packages and the Puppet module need.
KUBEMETA_APT_EXTRA="debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools
  lintian autopkgtest man-db python3-pytest puppet mmdebstrap logrotate"
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh

if [ $# -gt 0 ]; then
    exec "$VENV/bin/python" -m pytest "$@"
fi

results=$(mktemp /tmp/kubemeta-results.XXXXXX)
times=$(mktemp /tmp/kubemeta-times.XXXXXX)
trap 'rm -f "$results" "$times"' EXIT
export KUBEMETA_RESULTS=$results
echo "setup (Debian packages, bookworm virtualenv): $((SECONDS - start)) s" >>"$times"
current=""
on_error() {
    echo "=== stage FAILED: $current, after $((SECONDS - stage_start)) s" >&2
    cat "$times" >&2
}
trap on_error ERR
stage() {  # stage NAME COMMAND...: run it, and say how long it took
    current=$1
    shift
    stage_start=$SECONDS
    echo "=== stage: $current" >&2
    "$@"
    echo "=== stage: $current: ok in $((SECONDS - stage_start)) s" >&2
    echo "$current: $((SECONDS - stage_start)) s" >>"$times"
}
bookworm_suite() {
    local log
    log=$(mktemp)
    "$VENV/bin/python" -m pytest -p no:cacheprovider 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    echo "bookworm (Debian's libraries): $(grep -E "^=+ .*(passed|failed).* =+$" "$log" \
        | tail -1)" >>"$results"
    rm -f "$log"
    return "$rc"
}

stage "lint and types" bash -c "
    '$VENV/bin/ruff' check kubemeta devel tests scripts bench
    MYPYPATH=tests:devel '$VENV/bin/mypy' kubemeta devel/apiemulator bench/bench.py bench/trivial.py bench/reference.py bench/omprog.py bench/recovery.py"
stage "bookworm: Debian's libraries" bookworm_suite
stage "PyPI: the newest libraries, clean virtualenv" ./scripts/pypi-test.sh
stage "bookworm .deb: build, lintian, install, test, upgrade, purge, Puppet" \
    ./scripts/package-test.sh
stage "trixie .deb: mmdebstrap root, build, lintian, install, test" ./scripts/trixie-test.sh

echo "=== stage times" >&2
cat "$times" >&2
echo "=== platforms" >&2
cat "$results" >&2
echo "=== all stages passed in $((SECONDS - start)) s" >&2
