#!/bin/bash
# The trixie stage of the test command: Debian 13 is Debian's stable release,
# with its own Python (3.13), python3-kubernetes 30.1, urllib3 2.3 and rsyslog
# 8.2504. A trixie root is made with mmdebstrap from the Debian archive this
# machine's apt already uses; in it the .deb is built as an unprivileged user,
# checked with lintian, installed (rsyslog's trigger must fire), and its
# autopkgtest runs the whole suite against the installed package: trixie's
# rsyslogd, and the differential test against trixie's mmkubernetes.
# Needs root (mmdebstrap's root mode, chroot, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
say() { echo "trixie: $*" >&2; }
fail() { echo "trixie stage FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    echo "trixie stage SKIPPED: making a Debian root and installing into it needs root" >&2
    exit 0
fi
command -v mmdebstrap >/dev/null || fail "mmdebstrap is missing: apt-get install mmdebstrap"

# The archive this machine's apt uses for its own release, and its security archive.
. /etc/os-release
targets=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' | sort -u)
mirror=$(awk -v r="$VERSION_CODENAME" '$2 == r { print $1; exit }' <<<"$targets")
security=$(awk -v r="$VERSION_CODENAME-security" '$2 == r { print $1; exit }' <<<"$targets")
[ -n "$mirror" ] || fail "no Debian archive for $VERSION_CODENAME in this machine's apt sources"
sources=("deb $mirror trixie main" "deb $mirror trixie-updates main")
[ -z "$security" ] || sources+=("deb $security trixie-security main")

# What building, checking and testing need, as debian/control and
# debian/tests/control name them (the suite's own dependencies come with @).
packages="build-essential debhelper dh-python pybuild-plugin-pyproject python3-all
  python3-setuptools lintian autopkgtest python3 python3-kubernetes python3-cachetools
  python3-tenacity python3-systemd python3-yaml python3-orjson rsyslog rsyslog-kubernetes
  rsyslog-kafka openssl python3-pytest man-db puppet logrotate"

work=$(mktemp -d /tmp/kubemeta-trixie.XXXXXX)
chmod 0755 "$work"
root="$work/root"
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
    # Nothing may still be mounted inside when the root is removed.
    if ! grep -q " $root/" /proc/self/mounts; then
        rm -rf --one-file-system "$work"
    else
        echo "trixie: $root still has mounts; left in place" >&2
    fi
}
trap cleanup EXIT

say "making a trixie root from $mirror (mmdebstrap)"
if ! mmdebstrap --variant=apt --mode=root --include="$(echo $packages | tr ' ' ',')" \
        trixie "$root" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1; then
    tail -30 "$work/mmdebstrap.log" >&2
    fail "mmdebstrap"
fi
mount -t proc proc "$root/proc" || fail "mounting /proc in the root"
mounted+=("$root/proc")
mount --bind /dev "$root/dev" || fail "mounting /dev in the root"
mounted+=("$root/dev")

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LC_ALL=C.UTF-8 "$@"; }
as_nobody() { chroot "$root" runuser -u nobody -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/build LC_ALL=C.UTF-8 "$@"; }
say "$(in_root dpkg-query -W -f '${Package} ${Version}, ' python3 python3-kubernetes \
    python3-urllib3 rsyslog rsyslog-kubernetes | sed 's/, $//')"

"$repo/scripts/export-tree.sh" "$root/build/kubemeta"
"$repo/scripts/export-tree.sh" "$root/src"
chown -R nobody:nogroup "$root/build"

say "building as an unprivileged user (dpkg-buildpackage -us -uc -b)"
if ! as_nobody sh -c 'cd /build/kubemeta && dpkg-buildpackage -us -uc -b' \
        >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    fail "dpkg-buildpackage"
fi
deb=$(cd "$root/build" && echo kubemeta_*_all.deb)
changes=$(cd "$root/build" && echo kubemeta_*.changes)
[ -f "$root/build/$deb" ] || fail "no .deb was built"

say "lintian --pedantic"
lint=$(as_nobody lintian --pedantic -I -E "/build/$changes" 2>&1) || fail "lintian: $lint"
[ -z "$lint" ] || fail "lintian reported:
$lint"

say "installing $deb"
out=$(in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/build/$deb" 2>&1) \
    || fail "apt-get install: $out"
grep -q "Processing triggers for rsyslog" <<<"$out" \
    || fail "installing did not trigger rsyslog: $out"

say "the test suite against the installed package (autopkgtest, null runner)"
if ! in_root autopkgtest "/build/$deb" /src/ -- null >"$work/autopkgtest.log" 2>&1; then
    grep -E "^(E |FAILED|ERROR)|passed|failed|autopkgtest \[|badpkg|blame|[Uu]nmet|Unable" \
        "$work/autopkgtest.log" \
        | tail -40 >&2
    fail "autopkgtest"
fi
summary=$(grep -E "^=+ .*(passed|failed).* =+$" "$work/autopkgtest.log" | tail -1)
echo "$summary" >&2
[ -z "${KUBEMETA_RESULTS:-}" ] || echo "trixie .deb (installed): $summary" >>"$KUBEMETA_RESULTS"
say "ok: built, lint-clean, installed and tested in Debian trixie"
