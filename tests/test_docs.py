"""The README documents every configuration key, and CI runs the README's command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubemeta
from kubemeta import config

REPO = Path(__file__).resolve().parent.parent


def test_every_config_key_is_in_the_reference() -> None:
    text = (REPO / "README.md").read_text()
    reference = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", reference))
    missing = [k for k in config.field_names() if k not in documented]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in readme
    assert "./scripts/test.sh" in ci


def test_man_page_names_every_command_and_setting() -> None:
    page = (REPO / "debian" / "kubemeta.1").read_text()
    words = set(re.findall(r"[a-z_]+", page))
    assert [k for k in config.field_names() if k not in words] == []
    for command in ("mmexternal", "omprog", "enrich", "check", "serve", "status"):
        assert f".B kubemeta {command}" in page


def test_package_version_is_the_code_s() -> None:
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"kubemeta ({kubemeta.__version__}) ")
    assert f'"kubemeta {kubemeta.__version__}"' in (REPO / "debian" / "kubemeta.1").read_text()


def test_the_configuration_man_page_is_written_from_the_code() -> None:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "manconfig.py")],
                         capture_output=True, text=True, check=True).stdout
    page = (REPO / "debian" / "kubemeta.yaml.5").read_text()
    assert out == page, "run: python3 scripts/manconfig.py > debian/kubemeta.yaml.5"
    for key in config.field_names():
        assert f".B {key.replace('-', chr(92) + '-')}\n" in page, key
    assert ".SH EXAMPLES" in page


def test_the_puppet_modules_snippets_are_the_shipped_ones() -> None:
    shipped = sorted((REPO / "rsyslog.d").glob("50-*.conf"))
    copies = REPO / "contrib" / "puppet" / "kubemeta" / "files" / "rsyslog.d"
    assert [p.name for p in shipped] == sorted(p.name for p in copies.glob("50-*.conf"))
    stale = [p.name for p in shipped if (copies / p.name).read_bytes() != p.read_bytes()]
    assert stale == [], f"copy rsyslog.d/{stale[0]} to {copies}" if stale else ""
