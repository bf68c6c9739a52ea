"""The installed Debian package, as operators get it: files where the package
puts them, and the installed command run by a real rsyslogd through the
installed snippet. The test command's package stage runs these (through the
package's autopkgtest, with KUBEMETA_INSTALLED=1)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import kubemeta
from apiemulator import ApiEmulator, make_namespace, make_pod
from kubemeta.config import Config

from harness import (
    DOCKER,
    INSTALLED,
    KUBEMETA_BIN,
    REPO,
    SHIPPED,
    Rsyslog,
    container_log,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)

pytestmark = pytest.mark.skipif(
    not INSTALLED, reason="tests the installed Debian package (KUBEMETA_INSTALLED=1)")


def test_the_command_is_the_package() -> None:
    assert KUBEMETA_BIN.as_posix() == "/usr/bin/kubemeta"
    assert kubemeta.__file__.startswith("/usr/lib/python3/dist-packages/kubemeta/")
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "kubemeta"],
                             capture_output=True, text=True, check=True).stdout
    assert version == kubemeta.__version__
    out = subprocess.run([str(KUBEMETA_BIN), "--version"], capture_output=True, text=True,
                         env={}, timeout=30)
    assert out.stdout.splitlines()[0] == f"kubemeta {version}"
    # rsyslog execs helpers with no PATH: the script must name its interpreter.
    # (dh-python writes "#!/usr/bin/python3" on bookworm, "#! /usr/bin/python3" on trixie.)
    assert re.match(r"#! ?/usr/bin/python3\n", KUBEMETA_BIN.read_text())


def test_the_package_holds_no_test_tool() -> None:
    files = subprocess.run(["dpkg", "-L", "kubemeta"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert not [f for f in files if "emulator" in f], "the API emulator is a development tool"
    site = "/usr/lib/python3/dist-packages/"
    assert all(f.startswith(site + "kubemeta") for f in files if f.startswith(site)), files


def test_snippets_are_shipped_and_inactive() -> None:
    shipped = sorted(p.name for p in SHIPPED.iterdir())
    assert shipped == sorted(p.name for p in (REPO / "rsyslog.d").iterdir())
    for name in shipped:
        assert (SHIPPED / name).read_text() == (REPO / "rsyslog.d" / name).read_text(), name
    active = [p for p in Path("/etc/rsyslog.d").glob("*.conf")
              if "kubemeta" in p.read_text(errors="replace")]
    assert active == [], "installing the package must not enable a snippet"
    assert not Path("/etc/kubemeta/kubemeta.yaml").exists()


def test_state_dir_is_the_package_s() -> None:
    assert Path(Config().state_dir).is_dir()
    assert Config().state_dir == "/var/lib/kubemeta"
    assert os.stat("/var/lib/kubemeta").st_uid == 0


def test_table_mode_daemon_is_installed_inactive_with_an_empty_table() -> None:
    unit = Path("/lib/systemd/system/kubemeta.service")
    if not unit.exists():
        unit = Path("/usr/lib/systemd/system/kubemeta.service")
    text = unit.read_text()
    assert "ExecStart=/usr/bin/kubemeta serve --config /etc/kubemeta/kubemeta.yaml" in text
    assert "Type=notify" in text
    wants = Path("/etc/systemd/system/multi-user.target.wants/kubemeta.service")
    assert not wants.exists() and not wants.is_symlink(), "installing must not enable it"
    table = Path(Config().table_file)
    assert json.loads(table.read_text()) == json.loads(
        '{"version":1,"nomatch":"","type":"string","table":[]}')
    assert table.stat().st_mode & 0o777 == 0o640


def test_logrotate_knows_kubemetas_files(tmp_path: Path) -> None:
    conf = Path("/etc/logrotate.d/kubemeta")
    text = conf.read_text()
    assert "/var/log/kubemeta/*.log" in text and "copytruncate" in text
    out = subprocess.run(["/usr/sbin/logrotate", "-d", "-s", str(tmp_path / "state"), str(conf)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "error" not in out.stderr.lower(), out.stderr


def test_man_page() -> None:
    path = subprocess.run(["man", "-w", "kubemeta"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert path == "/usr/share/man/man1/kubemeta.1.gz"
    page = subprocess.run(["man", "-l", path], capture_output=True, text=True, check=True,
                          env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin", "MANPAGER": "cat"})
    assert "kubemeta mmexternal" in page.stdout
    assert "/usr/share/kubemeta/rsyslog.d/" in page.stdout
    path = subprocess.run(["man", "-w", "5", "kubemeta.yaml"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert path == "/usr/share/man/man5/kubemeta.yaml.5.gz"


def test_installed_snippet_enriches_through_rsyslogd(tmp_path: Path, emulator: ApiEmulator,
                                                      token_file: Path) -> None:
    emulator.world.apply(make_namespace("shop", {"team": "shop"}))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}, containers=("app",)))
    cfg = kubemeta_config(tmp_path, emulator, token_file)
    log = container_log(tmp_path, "shop", "web-1", "app")
    write_lines(log, [docker_line(f"line {i}") for i in range(20)])
    snippet = shipped_snippet(tmp_path, cfg, name=DOCKER)
    assert 'binary="/usr/bin/kubemeta mmexternal' in snippet
    with Rsyslog(tmp_path, snippet) as rs:
        recs = rs.wait_records(20)
        assert rs.helpers(), "rsyslog runs the installed command"
    assert [r["log"] for r in recs] == [f"line {i}\n" for i in range(20)]
    for r in recs:
        k = r["kubernetes"]
        assert (k["namespace_name"], k["pod_name"], k["container_name"]) == (
            "shop", "web-1", "app")
        assert k["labels"] == {"app": "web"}
        assert k["namespace_labels"]["team"] == "shop"
