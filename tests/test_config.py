from __future__ import annotations

from pathlib import Path

import pytest

from kubemeta import config
from kubemeta.config import Config
from kubemeta.errors import ConfigError

from harness import EXAMPLE_CONFIG


def load_text(tmp_path: Path, text: str) -> Config:
    p = tmp_path / "k.yaml"
    p.write_text(text)
    return config.load(str(p))


def test_defaults_match_the_example_file() -> None:
    data = config.read_yaml(str(EXAMPLE_CONFIG))
    assert set(data) <= set(config.field_names())
    defaults = Config()
    for key, value in data.items():
        if key in ("token_file", "ca_file"):  # marked "example" in the file
            continue
        assert getattr(defaults, key) == (tuple(value) if isinstance(value, list) else value), key


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "") == Config()


def test_unknown_keys_and_wrong_types_are_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, "kubernetes_ur: https://x\nde_dot: 'yes'\npod_cache_ttl: soon\n"
                            "annotation_match: [1]\n")
    msg = str(e.value)
    assert "kubernetes_ur: unknown key (did you mean kubernetes_url?)" in msg
    assert "de_dot: expected true or false" in msg
    assert "pod_cache_ttl: expected a number" in msg
    assert "annotation_match[0]: expected a string" in msg


@pytest.mark.parametrize(("text", "fragment"), [
    ("- a\n- b\n", "expected a mapping"),
    ("key: [unclosed\n", "not valid YAML"),
    ("filename_patterns: ['^(?P<pod_name>.*)$']\n", "missing named group"),
    ("filename_patterns: ['(']\n", "not a valid regular expression"),
    ("filename_patterns: ['(?P<pod_name>a)(?P<namespace_name>b)(?P<container_name>c)(?P<x>d)']\n",
     "unknown named group(s) x"),
    ("annotation_match: ['[']\n", "annotation_match[0]"),
    ("extra_fields: [pod_ip, labels]\n", "extra_fields[1]: one of pod_ip, container_image"),
    ("source: kubelets\n", "source: one of"),
    ("source: watch\n", "source: watch needs node_name"),
    ("watch_timeout: 0\n", "watch_timeout: must be greater than 0"),
    ("deleted_pod_quiet_period: -1\n", "deleted_pod_quiet_period: must not be negative"),
    ("lookup_deadline: 0\n", "lookup_deadline: must be greater than 0"),
    ("pod_cache_size: 0\n", "pod_cache_size: must be at least 1"),
    ("kubernetes_url: api.example:6443\n", "kubernetes_url"),
    ("client_cert_file: /x.crt\n", "must be set together"),
    ("log_level: loud\n", "log_level"),
    ("filename_path: metadata.filename\n", "filename_path"),
])
def test_broken_values(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        load_text(tmp_path, text)
    assert fragment in str(e.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(str(tmp_path / "absent.yaml"))


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("lookup_deadline: 0.5\nde_dot: true\n")
    cfg = config.load(str(p), {"lookup_deadline": config.parse_flag_value("lookup_deadline", "2"),
                               "de_dot": config.parse_flag_value("de_dot", "false")})
    assert cfg.lookup_deadline == 2.0 and cfg.de_dot is False


def test_in_cluster_defaults_to_the_service_account_files() -> None:
    cfg = Config(in_cluster=True)
    assert cfg.effective_token_file() == f"{config.SERVICE_ACCOUNT_DIR}/token"
    assert cfg.effective_ca_file() == f"{config.SERVICE_ACCOUNT_DIR}/ca.crt"
    assert Config(in_cluster=True, token="t").effective_token_file() is None
    assert Config().effective_token_file() is None
