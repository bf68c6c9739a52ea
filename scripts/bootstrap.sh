# Sourced by scripts/test.sh and scripts/demo.sh: installs what kubemeta needs on
# a Debian machine (apt packages when root) and a virtualenv in $VENV built on
# Debian's python3 and packaged libraries, the versions kubemeta supports.
# Extra pip extras may be given in $KUBEMETA_EXTRAS (e.g. "test"), extra Debian
# packages in $KUBEMETA_APT_EXTRA.

APT_PACKAGES="rsyslog rsyslog-kubernetes rsyslog-kafka openssl python3 python3-venv python3-pip
  python3-kubernetes python3-cachetools python3-tenacity python3-systemd python3-yaml
  ${KUBEMETA_APT_EXTRA:-}"
VENV=${KUBEMETA_VENV:-.venv}

if [ "$(id -u)" = 0 ]; then
    missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "installing Debian packages:$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $APT_PACKAGES >&2
    fi
fi
for tool in rsyslogd openssl /usr/bin/python3; do
    if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
        echo "missing $tool: as root, install the Debian packages: $APT_PACKAGES" >&2
        exit 1
    fi
done

if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -e ".${KUBEMETA_EXTRAS:+[$KUBEMETA_EXTRAS]}" >&2
