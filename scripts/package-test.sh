#!/bin/bash
# The Debian package stage of the test command: build the .deb as an
# unprivileged user, check it with lintian, install it (rsyslog's trigger must
# fire), run the test suite against the installed package (its autopkgtest,
# null runner), reinstall it (the upgrade path), purge it and check that
# nothing is left, then have the Puppet module install it, move a node from
# mmkubernetes to it and take it out again. Needs root, to install.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "package stage SKIPPED: installing the package needs root" >&2
    exit 0
fi
if grep -qls kubemeta /etc/rsyslog.d/*.conf 2>/dev/null; then
    echo "package stage refused: /etc/rsyslog.d enables kubemeta on this machine, and this" \
         "stage installs and purges the package; run it on a test machine" >&2
    exit 1
fi

if dpkg-query -W -f '${Status}' kubemeta 2>/dev/null | grep -q "ok installed"; then
    echo "package: kubemeta is installed but not enabled; purging it to test a fresh install" >&2
    apt-get purge -y -q kubemeta >/dev/null
fi

work=$(mktemp -d /tmp/kubemeta-package.XXXXXX)
chmod 0755 "$work"
installed=""
cleanup() {
    if [ -n "$installed" ]; then
        apt-get purge -y -q kubemeta >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

say() { echo "package: $*" >&2; }
fail() { echo "package stage FAILED: $*" >&2; exit 1; }

"$repo/scripts/export-tree.sh" "$work/build/kubemeta"
"$repo/scripts/export-tree.sh" "$work/src"
chown -R nobody:nogroup "$work/build"

say "building as an unprivileged user (dpkg-buildpackage -us -uc -b)"
clean_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/build" LC_ALL=C.UTF-8)
if ! (cd "$work/build/kubemeta" && runuser -u nobody -- "${clean_env[@]}" \
        dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
    tail -40 "$work/build.log" >&2
    fail "dpkg-buildpackage"
fi
deb=$(echo "$work"/build/kubemeta_*_all.deb)
changes=$(echo "$work"/build/kubemeta_*.changes)
[ -f "$deb" ] || fail "no .deb was built"

say "lintian --pedantic"
lint=$(runuser -u nobody -- "${clean_env[@]}" lintian --pedantic -I -E "$changes" 2>&1) \
    || fail "lintian: $lint"
[ -z "$lint" ] || fail "lintian reported:
$lint"

say "installing $(basename "$deb")"
installed=yes
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" 2>&1) \
    || fail "apt-get install: $out"
grep -q "Processing triggers for rsyslog" <<<"$out" \
    || fail "installing did not trigger rsyslog: $out"

# The bookworm stage ran the pure unit tests with this same Python and these same
# libraries: here the suite runs what tests the installed files.
say "the end-to-end suite against the installed package (autopkgtest, null runner)"
if ! autopkgtest --env=KUBEMETA_SKIP_UNIT=1 "$deb" "$work/src/" -- null \
        >"$work/autopkgtest.log" 2>&1; then
    grep -E "^(E |FAILED|ERROR)|passed|failed|autopkgtest \[" "$work/autopkgtest.log" \
        | tail -40 >&2
    fail "autopkgtest"
fi
summary=$(grep -E "^=+ .*(passed|failed).* =+$" "$work/autopkgtest.log" | tail -1)
echo "$summary" >&2
[ -z "${KUBEMETA_RESULTS:-}" ] || echo "bookworm .deb (installed): $summary" >>"$KUBEMETA_RESULTS"

say "reinstalling (the upgrade path): rsyslog must be triggered again"
out=$(dpkg -i "$deb" 2>&1) || fail "dpkg -i: $out"
grep -q "Processing triggers for rsyslog" <<<"$out" \
    || fail "upgrading did not trigger rsyslog: $out"

say "purging"
echo "state" > /var/lib/kubemeta/left-by-a-helper
out=$(apt-get purge -y -q kubemeta 2>&1) || fail "apt-get purge: $out"
installed=""
if dpkg-query -W -f '${Status}' kubemeta 2>/dev/null | grep -q installed; then
    fail "kubemeta is still installed after purge"
fi
for p in /usr/bin/kubemeta /usr/share/kubemeta /var/lib/kubemeta /usr/share/doc/kubemeta \
         /usr/lib/python3/dist-packages/kubemeta; do
    [ ! -e "$p" ] || fail "$p is left after purge"
done

say "Puppet: the contrib module installs the .deb, moves a node from mmkubernetes, takes it out"
venv=${KUBEMETA_VENV:-.venv}
installed=yes   # Puppet installs it; if the test stops half-way, the cleanup purges it
if ! KUBEMETA_DEB="$deb" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/test_puppet.py -k package_and_back_out >"$work/puppet.log" 2>&1; then
    tail -60 "$work/puppet.log" >&2
    fail "the Puppet module against the package"
fi
grep -q "1 passed" "$work/puppet.log" || fail "the Puppet test did not run: $(tail -3 "$work/puppet.log")"
installed=""
say "ok: built, lint-clean, installed, tested, upgraded, purged, and deployed with Puppet"
