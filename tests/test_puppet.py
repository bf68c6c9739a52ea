"""The Puppet module in contrib/puppet, applied with Debian's puppet.

The suite applies it to temporary directories, with the package left alone.
The package stage of scripts/test.sh sets KUBEMETA_DEB to the .deb it built and
runs the last test, which applies it to the machine: it installs that .deb,
switches a node from mmkubernetes to kubemeta, and takes kubemeta out again.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kubemeta.model.table import EMPTY as EMPTY_TABLE

from harness import (
    CRI,
    DOCKER,
    KUBEMETA_BIN,
    OMPROG,
    REPO,
    RSYSLOGD,
    SHIPPED,
    TABLE_CRI,
    TABLE_DOCKER,
)

PUPPET = shutil.which("puppet") or "/usr/bin/puppet"
MODULE = REPO / "contrib" / "puppet" / "kubemeta"
DEB = os.environ.get("KUBEMETA_DEB")
TOKEN = "puppet-test-token-4f1c9a"
KEY = "-----BEGIN PRIVATE KEY-----\npuppet-test-key-77e0b2\n-----END PRIVATE KEY-----\n"

needs_puppet = pytest.mark.skipif(not os.path.exists(PUPPET),
                                  reason="Debian's puppet package is not installed "
                                         "(scripts/test.sh installs it)")
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="the class sets owners and modes: puppet apply as root")


@dataclass
class Applied:
    rc: int
    output: str


class Site:
    """A node's Puppet run, with its files under ``root``.

    The site declares the rsyslog service (a stub that counts restarts) and
    owns rsyslog.d; its main rsyslog.conf loads imfile for an input of its own
    and includes the drop-ins.
    """

    def __init__(self, root: Path, purge: bool = True) -> None:
        self.root = root
        self.etc = root / "kubemeta"
        self.dropins = root / "rsyslog.d"
        self.var = root / "puppet-var"
        self.restarts = root / "restarts"
        self.purge = purge
        self.dropins.mkdir(parents=True, exist_ok=True)
        (root / "spool").mkdir(exist_ok=True)
        self.rsyslog_conf = root / "rsyslog.conf"
        self.rsyslog_conf.write_text(
            f'global(workDirectory="{root}/spool")\n'
            'module(load="imfile")\n'
            f'input(type="imfile" file="{root}/site/*.log" tag="site" ruleset="site")\n'
            'ruleset(name="site") { stop }\n'
            f'include(file="{self.dropins}/*.conf")\n')
        self.output_conf = ('ruleset(name="kubemeta_output") {\n'
                            f'    action(type="omfile" file="{root}/out.log")\n}}\n')

    def manifest(self, params: str) -> str:
        purge = "recurse => true, purge => true," if self.purge else ""
        if "config_dir" not in params:
            params = f"config_dir => '{self.etc}',\n  {params}"
        if "manage_daemon" not in params:
            # No systemd here to manage table mode's daemon with.
            params = f"manage_daemon => false,\n  {params}"
        return f"""
service {{ 'rsyslog':
  provider => 'base', start => '/bin/true', stop => '/bin/true', status => '/bin/true',
  restart  => "/bin/sh -c 'echo restart >> {self.restarts}'",
}}
file {{ '{self.dropins}': ensure => directory, {purge} }}
file {{ '{self.dropins}/60-output.conf': ensure => file, content => '{self.output_conf}' }}
class {{ 'kubemeta':
  rsyslog_dir => '{self.dropins}',
  {params}
}}
"""

    def apply(self, params: str, *flags: str) -> Applied:
        site = self.root / "site.pp"
        site.write_text(self.manifest(params))
        return puppet_apply(self.root, site, "--detailed-exitcodes", *flags)

    def restart_count(self) -> int:
        return len(self.restarts.read_text().splitlines()) if self.restarts.exists() else 0

    def rsyslog_accepts(self) -> str:
        out = subprocess.run([RSYSLOGD, "-N1", "-f", str(self.rsyslog_conf)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout + out.stderr

    def run_records(self) -> str:
        """Every file puppet keeps about its runs: reports, caches, the filebucket."""
        texts = []
        for p in self.var.rglob("*"):
            if p.is_file():
                texts.append(p.read_bytes().decode("utf-8", "replace"))
        return "\n".join(texts)


def puppet_apply(root: Path, manifest: Path, *flags: str) -> Applied:
    """``puppet apply`` with the module, keeping all of puppet's own state under ``root``."""
    out = subprocess.run(
        [PUPPET, "apply", "--color=false", *flags, "--modulepath", str(MODULE.parent),
         "--vardir", str(root / "puppet-var"), "--confdir", str(root / "puppet-etc"),
         "--codedir", str(root / "puppet-code"), "--logdir", str(root / "puppet-log"),
         "--rundir", str(root / "puppet-run"), str(manifest)],
        capture_output=True, text=True, timeout=300)
    return Applied(out.returncode, out.stdout + out.stderr)


def mode(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid


def expected_dropin(shipped: str, config: Path, binary: str, workers: int | None,
                    skip: tuple[str, ...] = ()) -> str:
    """The shipped snippet as the class must change it."""
    text = shipped.replace("/usr/bin/kubemeta ", f"{binary} ")
    text = text.replace("--config /etc/kubemeta/kubemeta.yaml", f"--config {config}")
    if workers is not None:
        assert 'queue.workerThreads="2"' in text
        text = text.replace('queue.workerThreads="2"', f'queue.workerThreads="{workers}"')
    for module in skip:
        assert f'module(load="{module}")\n' in text
        text = text.replace(f'module(load="{module}")\n', "")
    return text


def dropin_body(path: Path) -> str:
    head, body = path.read_text().split("\n\n", 1)
    assert head.startswith("# Managed by Puppet (class kubemeta)")
    return body


@pytest.mark.parametrize("name", [DOCKER, CRI, OMPROG, TABLE_DOCKER, TABLE_CRI])
def test_module_carries_the_shipped_snippets(name: str) -> None:
    # Catalogs are compiled where the package is not installed, so the module
    # has copies; they must be the package's, byte for byte.
    assert (MODULE / "files" / "rsyslog.d" / name).read_bytes() == (SHIPPED / name).read_bytes()


@needs_puppet
def test_manifests_parse() -> None:
    manifests = sorted(str(p) for p in MODULE.rglob("*.pp"))
    assert len(manifests) >= 4
    out = subprocess.run([PUPPET, "parser", "validate", *manifests],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    templates = sorted(str(p) for p in MODULE.rglob("*.epp"))
    out = subprocess.run([PUPPET, "epp", "validate", *templates],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_puppet
@needs_root
def test_a_site_applies_the_class_then_takes_it_out(tmp_path: Path) -> None:
    site = Site(tmp_path)
    token_file = site.etc / "token"
    params = f"""
  kubernetes_url => 'https://api.example.net:6443',
  token_file     => '{token_file}',
  token          => Sensitive('{TOKEN}'),
  ca_file        => '{site.etc}/ca.crt',
  ca_cert        => "-----BEGIN CERTIFICATE-----\\nMIIBfake\\n-----END CERTIFICATE-----\\n",
  node_name      => 'node-7',
  extra_fields   => ['owner', 'pod_ip'],
  settings       => {{ 'lookup_deadline' => 0.5, 'source' => 'watch',
                      'annotation_match' => ['^prometheus\\\\.io/', 'a"b'] }},
  skip_modules   => ['imfile'],
  manage_package => false,
  binary         => '{KUBEMETA_BIN}',
"""
    first = site.apply(params)
    assert first.rc == 2, first.output
    assert site.restart_count() == 1, first.output

    config = site.etc / "kubemeta.yaml"
    dropin = site.dropins / "50-kubemeta.conf"
    assert mode(site.etc) == ("0o750", 0, 0)
    assert mode(config) == ("0o640", 0, 0)
    assert mode(token_file) == ("0o600", 0, 0)
    assert mode(site.etc / "ca.crt") == ("0o644", 0, 0)
    assert mode(dropin) == ("0o644", 0, 0)
    assert token_file.read_text() == TOKEN
    assert yaml.safe_load(config.read_text()) == {
        "kubernetes_url": "https://api.example.net:6443",
        "ca_file": f"{site.etc}/ca.crt",
        "token_file": str(token_file),
        "node_name": "node-7",
        "extra_fields": ["owner", "pod_ip"],
        "lookup_deadline": 0.5,
        "source": "watch",
        "annotation_match": ["^prometheus\\.io/", 'a"b'],
    }
    out = subprocess.run([str(KUBEMETA_BIN), "check", "--config-only", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert dropin_body(dropin) == expected_dropin(
        (SHIPPED / CRI).read_text(), config, str(KUBEMETA_BIN), 2, skip=("imfile",))
    # The site's purge of rsyslog.d keeps the managed drop-in; rsyslog takes it
    # with the site's own imfile load and output ruleset.
    assert sorted(p.name for p in site.dropins.iterdir()) == ["50-kubemeta.conf", "60-output.conf"]
    site.rsyslog_accepts()
    assert TOKEN not in first.output and TOKEN not in site.run_records()

    again = site.apply(params)
    assert again.rc == 0, again.output
    assert site.restart_count() == 1

    # A rotated token: written, redacted, and no restart (kubemeta re-reads the file).
    rotated = site.apply(params.replace(TOKEN, TOKEN + "-rotated"), "--show_diff")
    assert rotated.rc == 2, rotated.output
    assert "[redacted]" in rotated.output
    assert token_file.read_text() == TOKEN + "-rotated"
    assert TOKEN not in rotated.output and TOKEN not in site.run_records()
    assert sorted(p.name for p in site.etc.iterdir()) == ["ca.crt", "kubemeta.yaml", "token"]
    assert site.restart_count() == 1
    params = params.replace(TOKEN, TOKEN + "-rotated")

    # More workers and a new CA: one restart for both; the old CA is backed up
    # the site's way (the filebucket here), not beside the new one.
    params = params.replace("MIIBfake", "MIIBnew") + "  workers => 4,\n"
    more = site.apply(params)
    assert more.rc == 2, more.output
    assert 'queue.workerThreads="4"' in dropin.read_text()
    assert "MIIBnew" in (site.etc / "ca.crt").read_text()
    assert sorted(p.name for p in site.etc.iterdir()) == ["ca.crt", "kubemeta.yaml", "token"]
    assert site.restart_count() == 2

    # A setting kubemeta refuses fails the config resource: the old file stays,
    # the drop-in is left alone and rsyslog is not restarted.
    before = config.read_bytes()
    broken = site.apply(params.replace("'source' => 'watch'", "'source' => 'wath'"))
    assert broken.rc in (4, 6), broken.output
    assert "source: one of get, watch, kubelet; got 'wath'" in broken.output
    assert config.read_bytes() == before
    assert site.restart_count() == 2

    gone = site.apply(params + "  ensure => 'absent',\n")
    assert gone.rc == 2, gone.output
    assert not site.etc.exists() and not dropin.exists()
    assert site.restart_count() == 3
    site.rsyslog_accepts()
    assert site.apply(params + "  ensure => 'absent',\n").rc == 0
    assert site.restart_count() == 3


@needs_puppet
@needs_root
@pytest.mark.parametrize(("params", "message"), [
    ("token => Sensitive('x'),", "token needs token_file"),
    ("client_cert_file => '/k/c.crt',",
     "client_cert_file and client_key_file must be set together"),
    ("token_file => '/k/t', client_cert_file => '/k/c', client_key_file => '/k/k',",
     "not both"),
    ("settings => { 'token' => 'x' },", "set token with its class parameter, not in settings"),
    ("snippet => 'omprog', workers => 3,", "workers applies to the mmexternal snippets"),
    ("snippet => 'table-cri', settings => { 'table_file' => '/t.json' },",
     "leave table_file and table_reload_file at their defaults"),
    ("settings => { 'merge_log_key' => \"a\\nb\" },", "a setting contains a control character"),
    ("config_dir => '/etc/kube meta',", "Kubemeta::Path"),
])
def test_the_class_refuses_what_kubemeta_would(tmp_path: Path, params: str, message: str) -> None:
    site = Site(tmp_path)
    out = site.apply(f"manage_package => false, binary => '{KUBEMETA_BIN}', {params}")
    assert out.rc == 1, out.output
    assert message in out.output
    assert not site.etc.exists() and site.restart_count() == 0


@needs_puppet
@needs_root
@pytest.mark.parametrize("snippet, shipped", [("table-docker", TABLE_DOCKER),
                                              ("table-cri", TABLE_CRI)])
def test_the_class_chooses_table_mode(tmp_path: Path, snippet: str, shipped: str) -> None:
    site = Site(tmp_path)
    params = (f"manage_package => false, binary => '{KUBEMETA_BIN}', node_name => 'node-7', "
              f"snippet => '{snippet}', workers => 3, skip_modules => ['imfile'],")
    out = site.apply(params)
    assert out.rc == 2, out.output
    dropin = site.dropins / "50-kubemeta.conf"
    assert dropin_body(dropin) == expected_dropin(
        (SHIPPED / shipped).read_text(), site.etc / "kubemeta.yaml", str(KUBEMETA_BIN), 3,
        skip=("imfile",))
    table = "/var/lib/kubemeta/lookup-table.json"
    assert f'lookup_table(name="kubemeta" file="{table}")' in dropin.read_text()
    # rsyslog refuses a config whose table file is missing: it takes the drop-in
    # with a table of this test's (the package installs the real one).
    state = tmp_path / "state"
    state.mkdir()
    (state / "lookup-table.json").write_bytes(EMPTY_TABLE)
    dropin.write_text(dropin.read_text().replace("/var/lib/kubemeta/", f"{state}/"))
    site.rsyslog_accepts()


@needs_puppet
def test_the_example_compiles(tmp_path: Path) -> None:
    # --noop: the example names the machine's real paths, so nothing is changed.
    out = puppet_apply(tmp_path, MODULE / "examples" / "init.pp", "--noop")
    assert out.rc == 0, out.output
    assert "Compiled catalog" in out.output


def installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package],
                         capture_output=True, text=True)
    return out.stdout.endswith("ok installed")


@pytest.fixture
def mmkubernetes_restored() -> Iterator[None]:
    assert installed("rsyslog-kubernetes"), "the package stage needs rsyslog-kubernetes"
    yield
    if not installed("rsyslog-kubernetes"):
        subprocess.run(["apt-get", "install", "-y", "-q", "rsyslog-kubernetes"],
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                       capture_output=True, check=True, timeout=600)


@needs_puppet
@needs_root
@pytest.mark.skipif(DEB is None, reason="the package stage of scripts/test.sh runs this "
                                        "with KUBEMETA_DEB, the .deb it built")
def test_a_node_moves_from_mmkubernetes_to_the_package_and_back_out(
        tmp_path: Path, mmkubernetes_restored: None) -> None:
    assert not installed("kubemeta"), "the package stage runs this with kubemeta not installed"
    # A site that does not purge rsyslog.d: the old drop-in is a file the
    # class must remove itself, and it loads what kubemeta's snippet loads.
    site = Site(tmp_path, purge=False)
    old = site.dropins / "40-mmkubernetes.conf"
    old.write_text('module(load="mmjsonparse")\nmodule(load="mmkubernetes")\n'
                   'input(type="imfile" file="/var/log/containers/*.log" tag="kubernetes" '
                   'addMetadata="on" ruleset="k8s")\n'
                   'ruleset(name="k8s") {\n    action(type="mmjsonparse" cookie="")\n'
                   '    action(type="mmkubernetes")\n    call kubemeta_output\n}\n')
    rulebase = site.dropins / "k8s_filename.rulebase"
    rulebase.write_text("version=2\n")
    (site.dropins / "60-output.conf").write_text(site.output_conf)
    site.rsyslog_accepts()

    params = f"""
  kubernetes_url       => 'https://api.example.net:6443',
  token_file           => '{site.etc}/token',
  token                => Sensitive('{TOKEN}'),
  package_source       => '{DEB}',
  skip_modules         => ['imfile'],
  mmkubernetes         => 'absent',
  mmkubernetes_dropins => ['40-mmkubernetes.conf', '{rulebase}'],
"""
    switched = site.apply(params)
    assert switched.rc == 2, switched.output
    assert installed("kubemeta") and not installed("rsyslog-kubernetes")
    assert not old.exists() and not rulebase.exists()
    config = site.etc / "kubemeta.yaml"
    # The module's drop-in is the installed package's snippet, changed only
    # where the class says.
    assert dropin_body(site.dropins / "50-kubemeta.conf") == expected_dropin(
        Path("/usr/share/kubemeta/rsyslog.d", CRI).read_text(), config, "/usr/bin/kubemeta",
        2, skip=("imfile",))
    assert mode(site.etc / "token") == ("0o600", 0, 0)
    # The kubelet's default name: the host name, in lower case.
    hostname = os.uname().nodename.split(".")[0].lower()
    assert yaml.safe_load(config.read_text())["node_name"] == hostname
    site.rsyslog_accepts()
    assert site.restart_count() == 1
    assert TOKEN not in switched.output and TOKEN not in site.run_records()

    again = site.apply(params)
    assert again.rc == 0, again.output
    assert site.restart_count() == 1

    out = site.apply(params + "  ensure => 'absent',\n")
    assert out.rc == 2, out.output
    assert not installed("kubemeta")
    assert not Path("/usr/bin/kubemeta").exists() and not Path("/var/lib/kubemeta").exists()
    assert not site.etc.exists() and not (site.dropins / "50-kubemeta.conf").exists()
    assert sorted(p.name for p in site.dropins.iterdir()) == ["60-output.conf"]
    site.rsyslog_accepts()
    assert site.restart_count() == 2
    assert site.apply(params + "  ensure => 'absent',\n").rc == 0
