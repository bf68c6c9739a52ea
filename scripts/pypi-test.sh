#!/bin/bash
# The PyPI stage of the test command: what `pip install kubemeta` gives a new
# user, the newest release of every dependency, in a clean virtualenv without
# the system's site packages, from a plain `pip install '.[test]'`. The unit and
# end-to-end suite runs there, the differential test against Debian's
# mmkubernetes included; rsyslogd runs the helper that pip installed.
# With pytest arguments, runs only those tests (in the same fresh virtualenv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${KUBEMETA_PYPI_VENV:-.venv-pypi}
say() { echo "pypi: $*" >&2; }

rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
say "pip install '.[test]' into a clean virtualenv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir '.[test]' >&2
say "$("$venv/bin/kubemeta" --version | tr '\n' ' ')"

# The point of the stage is the newest client: say so if the registry has a newer one.
have=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("kubernetes"))')
newest=$("$venv/bin/python" -m pip index versions kubernetes --disable-pip-version-check \
    2>/dev/null | sed -n 's/^kubernetes (\(.*\))$/\1/p' || true)
if [ -n "$newest" ] && [ "$newest" != "$have" ]; then
    echo "pypi stage FAILED: kubernetes $have was installed, the newest is $newest" >&2
    exit 1
fi

if [ $# -gt 0 ]; then
    exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
fi
# The Puppet module does not touch Python: the bookworm stage tests it.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$venv/bin/python" -m pytest -p no:cacheprovider -q --ignore=tests/test_puppet.py 2>&1 \
    | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E "^=+ .*(passed|failed).* =+$|^[0-9]+ (passed|failed)" "$log" | tail -1)
[ -z "${KUBEMETA_RESULTS:-}" ] || echo "PyPI newest (kubernetes $have): $summary" >>"$KUBEMETA_RESULTS"
exit "$rc"
