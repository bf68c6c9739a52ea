"""The configuration: one YAML file, snake_case keys, every key documented here.

Values are strict: an unknown key or a value of the wrong type is reported by
name, so a typo never silently falls back to a default. Command-line flags
(one per key, ``--kubernetes-url`` for ``kubernetes_url``) override the file.
Reading the file is configfile's.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from kubemeta.errors import ConfigError
from kubemeta.wire.sinkaddr import parse_sink

DEFAULT_KUBERNETES_URL = "https://kubernetes.default.svc.cluster.local:443"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Equivalent to mmkubernetes's default liblognorm rule
#   /var/log/containers/%pod_name:char-to:_%_%namespace_name:char-to:_%_
#   %container_name_and_id:char-to:.%.log            (one line in the original)
# with container_name_and_id split at its last dash.
DEFAULT_FILENAME_PATTERNS: tuple[str, ...] = (
    r"^/var/log/containers/(?P<pod_name>[^_]+)_(?P<namespace_name>[^_]+)_"
    r"(?P<container_name>[^.]+)-(?P<container_id>[^.-]+)\.log$",
    r"^/var/log/pods/(?P<namespace_name>[^_/]+)_(?P<pod_name>[^_/]+)_(?P<pod_uid>[^_/]+)/"
    r"(?P<container_name>[^/]+)/[0-9]+\.log$",
)
# mmkubernetes's two container rules: k8s_<container>.<hash>_<pod>_<ns>_<uid>_<n>
# and the same without the hash.
DEFAULT_CONTAINER_NAME_PATTERNS: tuple[str, ...] = (
    r"^[^_]+_(?P<container_name>[^._]+)\.[^_]+_(?P<pod_name>[^_]+)_(?P<namespace_name>[^_]+)_"
    r"(?P<pod_uid>[^_]+)_[^_]*$",
    r"^[^_]+_(?P<container_name>[^_]+)_(?P<pod_name>[^_]+)_(?P<namespace_name>[^_]+)_"
    r"(?P<pod_uid>[^_]+)_[^_]*$",
)
# $! members that kubemeta or rsyslog's own modules set; merge_log_key may not take one.
RESERVED_KEYS = ("kubernetes", "docker", "log", "stream", "time", "metadata", "msg",
                 "kubemeta_of")
REQUIRED_GROUPS = frozenset({"namespace_name", "pod_name", "container_name"})
KNOWN_GROUPS = REQUIRED_GROUPS | {"container_id", "pod_uid"}


@dataclass(frozen=True)
class Config:
    """Every setting, with its default. The README's reference is written from this."""

    # -- where the API is and how to authenticate --
    kubernetes_url: str = DEFAULT_KUBERNETES_URL
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    kubeconfig: str | None = None
    kubeconfig_context: str | None = None
    in_cluster: bool = False
    insecure_skip_tls_verify: bool = False
    allow_insecure_http: bool = False  # an http:// API, and then no credentials sent to it
    api_connect_timeout: float = 3.0
    api_read_timeout: float = 10.0
    # -- this node --
    node_name: str | None = None
    state_dir: str = "/var/lib/kubemeta"
    log_file: str = "/var/log/kubemeta/kubemeta.log"
    log_level: str = "info"
    # -- which pod wrote a record --
    filename_path: str = "$!metadata!filename"
    container_name_path: str = "$!CONTAINER_NAME"
    container_id_path: str = "$!CONTAINER_ID_FULL"
    filename_patterns: tuple[str, ...] = DEFAULT_FILENAME_PATTERNS
    container_name_patterns: tuple[str, ...] = DEFAULT_CONTAINER_NAME_PATTERNS
    # -- the output, as mmkubernetes shapes it --
    de_dot: bool = True
    de_dot_separator: str = "_"
    annotation_match: tuple[str, ...] = ()
    # pod_ip, container_image, container_image_id, owner, node_labels
    extra_fields: tuple[str, ...] = ()
    node_label_match: tuple[str, ...] = (r"^topology\.kubernetes\.io/",
                                         r"^node\.kubernetes\.io/instance-type$")
    # -- log control: pod annotations that drop or sample a pod's lines --
    log_control: bool = False
    log_control_exclude: str = "kubemeta.io/exclude"
    log_control_sample: str = "kubemeta.io/sample-rate"
    log_control_fluentbit: bool = False
    # -- the log line itself --
    parse_cri: bool = True
    merge_log: bool = False
    merge_log_key: str = "log_processed"
    # -- where metadata comes from --
    source: str | None = None  # get, watch or kubelet; None: watch with node_name, else get
    watch_timeout: float = 300.0
    watch_inactivity_timeout: float = 120.0
    watch_start_jitter: float = 60.0
    kubelet_url: str = "https://127.0.0.1:10250"
    kubelet_ca_file: str | None = None  # None: ca_file
    kubelet_insecure_skip_tls_verify: bool = False
    kubelet_refresh_interval: float = 30.0
    kubelet_min_interval: float = 2.0
    # While the API fails (source watch or get), a line of a pod kubemeta does
    # not know asks the node's kubelet (kubelet_url) for its pods.
    kubelet_fallback: bool = False
    snapshot_interval: float = 60.0  # 0: no warm-start snapshot
    # The helpers of one node (one per rsyslog worker thread) share one view of
    # the cluster through state_dir: one leads and asks the API, the others follow.
    share_helpers: bool = True
    share_view_max_age: float = 60.0  # followers drop a view their leader stopped vouching for
    busy_poll: float = 0.0
    # Each mmexternal reply also names its record ($!kubemeta_of: the file name
    # and offset), so the shipped snippets can drop a reply that rsyslog reads
    # for another record after it gave up on one (it does when it shuts down).
    reply_names_record: bool = False
    # -- table mode (kubemeta serve) --
    table_file: str = "/var/lib/kubemeta/lookup-table.json"
    table_reload_file: str = "/var/lib/kubemeta/lookup-table.reload"
    table_log_files: tuple[str, ...] = ("/var/log/containers/*.log",)
    table_max_bytes: int = 32 * 1024 * 1024
    table_min_interval: float = 0.25
    # -- caching and lookups --
    pod_cache_ttl: float = 300.0
    namespace_cache_ttl: float = 900.0
    not_found_ttl: float = 30.0
    error_retry_interval: float = 5.0
    pod_cache_size: int = 10000
    namespace_cache_size: int = 2000
    deleted_pod_quiet_period: float = 300.0
    deleted_pod_max_age: float = 3600.0
    lookup_deadline: float = 0.25
    lookup_workers: int = 4
    # -- outages: retry policy and gentleness --
    breaker_threshold: int = 2
    retry_initial: float = 1.0
    retry_max: float = 30.0
    retry_jitter: float = 1.0
    api_probe_interval: float = 1.0
    api_probe_window: float = 300.0
    max_request_rate: float = 20.0
    request_burst: int = 20
    # -- counters --
    stats_interval: float = 60.0
    stats_file: str | None = None
    prometheus_file: str | None = None
    # -- omprog mode: where enriched lines go --
    sink: str | None = None
    sink_timeout: float = 5.0
    sink_retry_initial: float = 0.2
    sink_retry_max: float = 5.0
    transaction_max_bytes: int = 4 * 1024 * 1024  # no longer used; existing configs load
    # -- input safety --
    max_line_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        _validate(self)

    def effective_source(self) -> str:
        if self.source is not None:
            return self.source
        return "watch" if self.node_name else "get"

    def effective_token_file(self) -> str | None:
        if self.token_file or self.token or not self.in_cluster:
            return self.token_file
        return f"{SERVICE_ACCOUNT_DIR}/token"

    def effective_ca_file(self) -> str | None:
        if self.ca_file or not self.in_cluster:
            return self.ca_file
        return f"{SERVICE_ACCOUNT_DIR}/ca.crt"


_FIELDS = {f.name: f for f in fields(Config)}
# Never quoted in a message: a config error reaches check, the log and rsyslog.
SECRET_FIELDS = frozenset({"token"})
_TYPES: dict[str, tuple[type, ...]] = {}
for _f in fields(Config):
    _t = str(_f.type)
    if _t.startswith("str"):
        _TYPES[_f.name] = (str,)
    elif _t == "bool":
        _TYPES[_f.name] = (bool,)
    elif _t == "int":
        _TYPES[_f.name] = (int,)
    elif _t == "float":
        _TYPES[_f.name] = (int, float)
    elif _t.startswith("tuple"):
        _TYPES[_f.name] = (list, tuple)
    else:  # pragma: no cover - a new field type must be taught here
        raise TypeError(f"unhandled config field type {_t} for {_f.name}")
_OPTIONAL = {f.name for f in fields(Config) if "None" in str(f.type)}

_TYPE_WORDS = {(str,): "a string", (bool,): "true or false", (int,): "an integer",
               (int, float): "a number", (list, tuple): "a list of strings"}


def field_names() -> list[str]:
    return list(_FIELDS)


def defaults() -> dict[str, Any]:
    """Each key and its built-in default."""
    return {name: f.default for name, f in _FIELDS.items()}


def _check_type(name: str, value: Any) -> Any:
    if value is None and name in _OPTIONAL:
        return None
    expected = _TYPES[name]
    # bool is an int subclass; "pod_cache_size: true" is a mistake, not 1.
    wrong = (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected)
    if wrong:
        shown = "(its value is not shown)" if name in SECRET_FIELDS else repr(value)
        raise ConfigError(
            f"{name}: expected {_TYPE_WORDS[expected]}, got {type(value).__name__} {shown}"
        )
    v: Any = value
    if expected == (list, tuple):
        for i, item in enumerate(v):
            if not isinstance(item, str):
                raise ConfigError(f"{name}[{i}]: expected a string, got {item!r}")
        return tuple(v)
    if expected == (int, float):
        return float(v)
    return v


def _validate(cfg: Config) -> None:
    for name in ("api_connect_timeout", "api_read_timeout", "lookup_deadline", "retry_initial",
                 "retry_max", "max_request_rate", "stats_interval", "sink_timeout",
                 "sink_retry_initial", "sink_retry_max", "watch_timeout",
                 "watch_inactivity_timeout", "kubelet_refresh_interval", "share_view_max_age"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}: must be greater than 0, got {getattr(cfg, name)}")
    for name in ("pod_cache_ttl", "namespace_cache_ttl", "not_found_ttl", "error_retry_interval",
                 "retry_jitter", "api_probe_interval", "api_probe_window", "watch_start_jitter",
                 "snapshot_interval", "kubelet_min_interval", "deleted_pod_quiet_period",
                 "busy_poll", "table_min_interval",
                 "deleted_pod_max_age"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name}: must not be negative, got {getattr(cfg, name)}")
    for name in ("pod_cache_size", "namespace_cache_size", "lookup_workers", "breaker_threshold",
                 "request_burst", "table_max_bytes"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name}: must be at least 1, got {getattr(cfg, name)}")
    if cfg.transaction_max_bytes < 1024:
        raise ConfigError("transaction_max_bytes: must be at least 1024, "
                          f"got {cfg.transaction_max_bytes}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", cfg.merge_log_key) or \
            cfg.merge_log_key in RESERVED_KEYS:
        raise ConfigError(f"merge_log_key: a plain name other than {', '.join(RESERVED_KEYS)}; "
                          f"got {cfg.merge_log_key!r}")
    if cfg.sink is not None:
        parse_sink(cfg.sink)
    if cfg.max_line_bytes < 1024:
        raise ConfigError(f"max_line_bytes: must be at least 1024, got {cfg.max_line_bytes}")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level: one of debug, info, warning, error; got {cfg.log_level!r}")
    if not re.match(r"^https?://[^/\s]+", cfg.kubernetes_url):
        raise ConfigError(
            f"kubernetes_url: expected https://host[:port], got {cfg.kubernetes_url!r}"
        )
    if cfg.kubernetes_url.startswith("http://") and not cfg.allow_insecure_http:
        raise ConfigError(
            f"kubernetes_url: {cfg.kubernetes_url} is plain http, where the token would travel "
            "in clear; use https://, or set allow_insecure_http: true (kubemeta then sends no "
            "credentials to it)")
    for name in ("filename_path", "container_name_path", "container_id_path"):
        path = getattr(cfg, name)
        if not path.startswith("$!") or "!!" in path or (path.endswith("!") and path != "$!"):
            raise ConfigError(f"{name}: expected a message variable like $!metadata!filename, "
                              f"got {path!r}")
    for name in ("filename_patterns", "container_name_patterns"):
        for i, pattern in enumerate(getattr(cfg, name)):
            try:
                rx = re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"{name}[{i}]: not a valid regular expression: {e}") from e
            missing = REQUIRED_GROUPS - set(rx.groupindex)
            if missing:
                raise ConfigError(f"{name}[{i}]: missing named group(s) "
                                  f"{', '.join(sorted(missing))}")
            unknown = set(rx.groupindex) - KNOWN_GROUPS
            if unknown:
                raise ConfigError(f"{name}[{i}]: unknown named group(s) "
                                  f"{', '.join(sorted(unknown))}; known: "
                                  f"{', '.join(sorted(KNOWN_GROUPS))}")
    for key in ("annotation_match", "node_label_match"):
        for i, pattern in enumerate(getattr(cfg, key)):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"{key}[{i}]: not a valid regular expression: {e}") from e
    from kubemeta.model.schema import EXTRA_FIELDS

    for i, name in enumerate(cfg.extra_fields):
        if name not in EXTRA_FIELDS:
            raise ConfigError(f"extra_fields[{i}]: one of {', '.join(EXTRA_FIELDS)}; "
                              f"got {name!r}")
    for name in ("log_control_exclude", "log_control_sample"):
        value = getattr(cfg, name)
        if not re.fullmatch(r"([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?", value):
            raise ConfigError(f"{name}: not an annotation name (such as kubemeta.io/exclude); "
                              f"got {value!r}")
    if cfg.log_control_exclude == cfg.log_control_sample:
        raise ConfigError("log_control_exclude and log_control_sample: the same annotation "
                          f"{cfg.log_control_exclude!r} cannot do both")
    if cfg.source not in (None, "get", "watch", "kubelet"):
        raise ConfigError(f"source: one of get, watch, kubelet; got {cfg.source!r}")
    if not re.match(r"^https://[^/\s]+", cfg.kubelet_url):
        raise ConfigError(f"kubelet_url: expected https://host[:port], got {cfg.kubelet_url!r}")
    if cfg.effective_source() == "watch" and not cfg.node_name:
        raise ConfigError("source: watch needs node_name (the watch is of this node's pods)")
    if "node_labels" in cfg.extra_fields and cfg.effective_source() != "watch":
        raise ConfigError("extra_fields: node_labels needs source: watch, with node_name (the "
                          "node's object is watched with its pods)")
    if (cfg.client_cert_file is None) != (cfg.client_key_file is None):
        raise ConfigError("client_cert_file and client_key_file must be set together")


def check_value(name: str, value: Any) -> Any:
    """One key's value, type-checked (and converted: lists to tuples, ints to
    floats); ConfigError names the key."""
    if name not in _FIELDS:
        close = difflib.get_close_matches(name, _FIELDS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{name}: unknown key{hint}")
    return _check_type(name, value)


def from_mapping(data: Mapping[str, Any], base: Config | None = None,
                 where: Callable[[str], str] | None = None) -> Config:
    """Build a Config from parsed YAML (or flags), reporting problems by key name,
    each after ``where(key)`` (a file and line)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in data.items():
        try:
            values[str(key)] = check_value(str(key), value)
        except ConfigError as e:
            problems.append(f"{where(str(key)) if where else ''}{e}")
    if problems:
        raise ConfigError("; ".join(problems))
    return dataclasses.replace(base or Config(), **values)


def parse_flag_value(name: str, text: str) -> Any:
    """Interpret a command-line value with YAML scalar rules (true, 5, [a, b])."""
    import yaml

    if _TYPES[name] == (str,):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--{name.replace('_', '-')}: cannot parse {text!r}: {e}") from e


__all__ = ["Config", "ConfigError", "check_value", "from_mapping"]
