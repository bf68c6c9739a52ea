from __future__ import annotations

from pathlib import Path

import pytest

from kubemeta import config, configfile
from kubemeta.config import Config
from kubemeta.errors import ConfigError

from harness import EXAMPLE_CONFIG


def load_text(tmp_path: Path, text: str) -> Config:
    p = tmp_path / "k.yaml"
    p.write_text(text)
    return configfile.load(str(p))


def test_defaults_match_the_example_file() -> None:
    data = configfile.read(str(EXAMPLE_CONFIG)).data
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
        configfile.load(str(tmp_path / "absent.yaml"))


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("lookup_deadline: 0.5\nde_dot: true\n")
    cfg = configfile.load(str(p), {
        "lookup_deadline": config.parse_flag_value("lookup_deadline", "2"),
        "de_dot": config.parse_flag_value("de_dot", "false")})
    assert cfg.lookup_deadline == 2.0 and cfg.de_dot is False


def test_in_cluster_defaults_to_the_service_account_files() -> None:
    cfg = Config(in_cluster=True)
    assert cfg.effective_token_file() == f"{config.SERVICE_ACCOUNT_DIR}/token"
    assert cfg.effective_ca_file() == f"{config.SERVICE_ACCOUNT_DIR}/ca.crt"
    assert Config(in_cluster=True, token="t").effective_token_file() is None
    assert Config().effective_token_file() is None


def test_each_problem_names_its_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("node_name: n1\n\nde_dot: maybe\npod_cache_tl: 5\n")
    with pytest.raises(ConfigError) as e:
        configfile.load(str(p))
    assert f"{p}:3: de_dot: expected true or false" in str(e.value)
    assert f"{p}:4: pod_cache_tl: unknown key (did you mean pod_cache_ttl?)" in str(e.value)


def test_a_problem_between_keys_names_the_line_of_the_first(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("log_level: info\nsource: watch\n")
    with pytest.raises(ConfigError, match=f"^{p}:2: source: watch needs node_name"):
        configfile.load(str(p))


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("node_name: a\nlog_level: info\nnode_name: b\n")
    with pytest.raises(ConfigError,
                       match=f"^{p}:3: node_name: given twice \\(first on line 1\\); keep one"):
        configfile.load(str(p))


def test_yaml_errors_name_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("node_name: a\nlog_level: [info\n")
    with pytest.raises(ConfigError, match=f"^{p}:3:1: not valid YAML"):
        configfile.load(str(p))


def test_a_helper_keeps_every_valid_value_of_a_broken_file(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("kubernetes_url: https://api.example:6443\nnode_name: n1\n"
                 "filename_patterns: ['^/logs/(?P<pod_name>[^_]+)_(?P<namespace_name>[^_]+)_"
                 "(?P<container_name>[^.]+)\\.log$']\nde_dot: maybe\nwatch_timeout: 0\n")
    loaded = configfile.load_lenient(str(p))
    assert loaded.origin == "valid values"
    assert loaded.config.kubernetes_url == "https://api.example:6443"
    assert loaded.config.node_name == "n1"
    assert loaded.config.filename_patterns[0].startswith("^/logs/")
    assert (loaded.config.de_dot, loaded.config.watch_timeout) == (True, 300.0)  # defaults
    assert f"{p}:4: de_dot: expected true or false" in loaded.problems[0]


def test_a_helper_drops_only_the_key_a_problem_between_keys_names(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("source: watch\nkubernetes_url: https://api.example:6443\n")
    loaded = configfile.load_lenient(str(p))
    assert (loaded.config.source, loaded.config.kubernetes_url) == (
        None, "https://api.example:6443")
    assert "source: watch needs node_name" in loaded.problems[0]


def test_a_file_that_cannot_be_parsed_gives_way_to_the_last_good_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    p = tmp_path / "k.yaml"
    p.write_text(f"kubernetes_url: https://api.example:6443\nstate_dir: {state}\n"
                 "token: a-literal-secret\n")
    good = configfile.load(str(p))
    configfile.save_last_good(str(p), good)
    saved = state / configfile.LAST_GOOD
    assert saved.stat().st_mode & 0o777 == 0o600
    assert "a-literal-secret" not in saved.read_text()
    p.write_text("kubernetes_url: [broken\n")
    loaded = configfile.load_lenient(str(p), {"state_dir": str(state)})
    assert (loaded.origin, loaded.config.kubernetes_url) == ("last good",
                                                             "https://api.example:6443")
    assert loaded.config.token is None
    assert "not valid YAML" in loaded.problems[0]
    saved.unlink()
    loaded = configfile.load_lenient(str(p), {"state_dir": str(state)})
    assert (loaded.origin, loaded.config) == ("defaults", Config(state_dir=str(state)))


def test_a_clean_file_has_no_problems(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("node_name: n1\n")
    assert configfile.load_lenient(str(p)) == configfile.Loaded(Config(node_name="n1"))


@pytest.mark.parametrize(("key", "value"), [
    ("log_control_exclude", ""), ("log_control_exclude", "has space"),
    ("log_control_sample", "kubemeta.io/"), ("log_control_sample", "-x")])
def test_log_control_annotation_names_are_checked(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}: not an annotation name"):
        config.from_mapping({key: value})


def test_log_control_needs_two_annotations() -> None:
    with pytest.raises(ConfigError, match="cannot do both"):
        config.from_mapping({"log_control_exclude": "a/b", "log_control_sample": "a/b"})
