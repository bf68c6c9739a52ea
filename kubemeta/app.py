"""The one place that builds kubemeta's parts from a Config.

Each part gets a small settings value of its own (StoreSettings,
ClientSettings, WatchSettings, SnapshotSettings, ...) and never sees the
Config. A new setting is a field in config.py, one line here that hands it
to the part, and the part that uses it.

The API client's modules (urllib3, and kubernetes for a kubeconfig) are
imported only inside the functions that need them, off the first reply's
path: a warm helper serves lines from its snapshot while they load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubemeta import files, text
from kubemeta.cache.lookups import Fetcher, LookupSettings
from kubemeta.cache.policy import Backoff, ProbePace
from kubemeta.cache.rules import CacheSettings
from kubemeta.cache.store import MetadataStore, StoreSettings
from kubemeta.clock import SYSTEM, Clock
from kubemeta.config import Config
from kubemeta.kinds import Mode, Role
from kubemeta.kube.credentials import ClientSettings, KubeletTarget
from kubemeta.model.identify import Identifier
from kubemeta.model.schema import LogControl, Shaper
from kubemeta.share.sharedview import ViewSlot
from kubemeta.shell.enricher import Enricher
from kubemeta.shell.sink import SinkWriter
from kubemeta.state import snapshot
from kubemeta.state.warmstart import SnapshotKeeper, SnapshotSettings
from kubemeta.wire.record import RecordReader
from kubemeta.wire.sharedproto import Group
from kubemeta.wire.sinkaddr import parse_sink

log = logging.getLogger("kubemeta.app")

if TYPE_CHECKING:
    from kubemeta.kube.kubeapi import KubeApi
    from kubemeta.roles import Helper
    from kubemeta.shell.health import Health
    from kubemeta.shell.stats import StatsWriter
    from kubemeta.shell.tablekeeper import TableKeeper


def store_settings(cfg: Config) -> StoreSettings:
    return StoreSettings(
        cache=CacheSettings(
            pod_ttl=cfg.pod_cache_ttl, namespace_ttl=cfg.namespace_cache_ttl,
            not_found_ttl=cfg.not_found_ttl, pod_cache_size=cfg.pod_cache_size,
            namespace_cache_size=cfg.namespace_cache_size,
            deleted_quiet=cfg.deleted_pod_quiet_period,
            deleted_max_age=cfg.deleted_pod_max_age, deleted_max=cfg.pod_cache_size),
        lookups=LookupSettings(
            error_retry_interval=cfg.error_retry_interval, workers=cfg.lookup_workers,
            breaker_threshold=cfg.breaker_threshold,
            probe=ProbePace(cfg.api_probe_interval, cfg.api_probe_window, retry_backoff(cfg)),
            max_request_rate=cfg.max_request_rate, request_burst=cfg.request_burst))


def retry_backoff(cfg: Config) -> Backoff:
    return Backoff(cfg.retry_initial, cfg.retry_max, cfg.retry_jitter)


def client_settings(cfg: Config) -> ClientSettings:
    return ClientSettings(
        url=cfg.kubernetes_url, kubeconfig=cfg.kubeconfig,
        kubeconfig_context=cfg.kubeconfig_context, ca_file=cfg.effective_ca_file(),
        cert_file=cfg.client_cert_file, key_file=cfg.client_key_file,
        insecure_skip_tls_verify=cfg.insecure_skip_tls_verify, token=cfg.token,
        token_file=cfg.effective_token_file(), connect_timeout=cfg.api_connect_timeout,
        read_timeout=cfg.api_read_timeout, watch_idle_timeout=cfg.watch_inactivity_timeout,
        allow_insecure_http=cfg.allow_insecure_http)


def kubelet_target(cfg: Config) -> KubeletTarget:
    return KubeletTarget(cfg.kubelet_url, cfg.kubelet_ca_file,
                         cfg.kubelet_insecure_skip_tls_verify)


class _Once:
    """Warns of each distinct message once: a pod is shaped again at every
    change and relist, and its problem is news only the first time."""

    LIMIT = 1000

    def __init__(self, event: str) -> None:
        self._event = event
        self._seen: set[str] = set()

    def warn(self, message: str) -> None:
        if message in self._seen:
            return
        if len(self._seen) >= self.LIMIT:
            self._seen.clear()
        self._seen.add(message)
        log.warning("%s", message, extra={"event": self._event})


def log_control(cfg: Config) -> LogControl | None:
    if not cfg.log_control:
        return None
    return LogControl(cfg.log_control_exclude, cfg.log_control_sample, cfg.log_control_fluentbit)


def shaper(cfg: Config) -> Shaper:
    return Shaper(cfg.de_dot, cfg.de_dot_separator, cfg.annotation_match, cfg.extra_fields,
                  log_control(cfg), _Once("log_control").warn, cfg.node_label_match)


def identity(cfg: Config) -> dict[str, Any]:
    """What shared or saved metadata depends on: any difference makes it foreign."""
    lc = log_control(cfg)
    return snapshot.identity(cfg.kubernetes_url, cfg.node_name, cfg.de_dot,
                             cfg.de_dot_separator, cfg.annotation_match, cfg.extra_fields,
                             None if lc is None else [lc.exclude, lc.sample, lc.fluentbit],
                             cfg.node_label_match if "node_labels" in cfg.extra_fields
                             else None)


class App:
    """The parts of one helper (or one ``enrich``/``check`` run), built from ``cfg``."""

    def __init__(self, cfg: Config, clock: Clock = SYSTEM) -> None:
        self.cfg = cfg
        self.clock = clock
        text.secret(cfg.token)
        self.mode = Mode(cfg.effective_source())
        self.shaper = shaper(cfg)
        self.backoff = retry_backoff(cfg)
        self.identity = identity(cfg)
        self.store_settings = store_settings(cfg)
        self.client = client_settings(cfg)
        self._state_checked = False
        self._state_problem: str | None = None
        # The config file's problems, told by whoever loaded it (kubemeta status).
        self.config_problems: tuple[str, ...] = ()
        # How long a leader looks for what a follower asked: a request's time.
        self.answer_wait = cfg.api_connect_timeout + cfg.api_read_timeout

    # -- the API --
    def api(self, kubelet: bool = False) -> KubeApi:
        from kubemeta.kube.kubeapi import KubeApi  # urllib3: off the first reply's path

        s = self.client.for_kubelet(kubelet_target(self.cfg)) if kubelet else self.client
        return KubeApi(s, self.clock)

    def fetcher(self, store: MetadataStore) -> Callable[[], Fetcher]:
        """What ``store`` asks: the API, or (source: kubelet) the node's kubelet,
        which keeps its list in that store. Called in the store's dispatcher."""

        def make() -> Fetcher:
            from kubemeta.kube import fetchers

            api = fetchers.ApiFetcher(self.api(), self.shaper)
            if self.mode is not Mode.KUBELET:
                return api
            polling = fetchers.KubeletPolling(self.cfg.kubelet_min_interval,
                                              self.cfg.kubelet_refresh_interval)
            kubelet = fetchers.KubeletFetcher(api, self.api(kubelet=True), store, self.shaper,
                                              polling, self.clock)
            kubelet.start(store.stopped)
            return kubelet

        return make

    # -- the store and what feeds it --
    def store(self) -> MetadataStore:
        return MetadataStore(clock=self.clock, settings=self.store_settings)

    def start_store(self, store: MetadataStore, lazy: bool = False) -> MetadataStore:
        store.start(self.fetcher(store), lazy)
        self.add_fallback(store)
        return store

    def add_fallback(self, store: MetadataStore) -> None:
        """kubelet_fallback, for a store that asks the API (a leader's, or one alone)."""
        if not self.cfg.kubelet_fallback or self.mode is Mode.KUBELET:
            return
        from kubemeta.kube.fallback import KubeletFallback

        store.fallback = KubeletFallback(lambda: self.api(kubelet=True), store, self.shaper,
                                         self.cfg.kubelet_min_interval, self.cfg.kubelet_url,
                                         self.clock)

    def start_watches(self, store: MetadataStore, warm: bool) -> None:
        """source: watch; see kube.watches."""
        from kubemeta.kube.watches import WatchSettings, start_watches

        assert self.cfg.node_name is not None
        s = WatchSettings(self.cfg.node_name, self.cfg.watch_timeout,
                          self.cfg.watch_start_jitter, self.backoff,
                          "node_labels" in self.cfg.extra_fields)
        start_watches(store, self.api, self.shaper, s, warm)

    def keeper(self, store: MetadataStore) -> SnapshotKeeper | None:
        if self.cfg.snapshot_interval <= 0 or self.state_dir_problem() is not None:
            return None  # a snapshot from an unsafe state_dir could be anyone's
        s = SnapshotSettings(self.group().snapshot_path, self.identity,
                             self.cfg.snapshot_interval)
        return SnapshotKeeper(store, s, self.clock)

    def state_dir_problem(self) -> str | None:
        """Why state_dir cannot be trusted (made 0750 if missing), or None."""
        if not self._state_checked:
            self._state_problem = files.private_dir(self.cfg.state_dir)
            self._state_checked = True
        return self._state_problem

    def group(self) -> Group:
        """This node's helpers of the same cluster and shape (see share)."""
        return Group.of(self.cfg.state_dir, self.identity)

    # -- the pipe's side --
    def enricher(self, store: MetadataStore | None, deadline: float | None = None,
                 shared: ViewSlot | None = None) -> Enricher:
        cfg = self.cfg
        reader = RecordReader(cfg.filename_path, cfg.container_name_path, cfg.container_id_path,
                              offset=cfg.reply_names_record)
        identifier = Identifier(cfg.filename_patterns, cfg.container_name_patterns)
        return Enricher(reader, identifier, store, cfg.kubernetes_url,
                        cfg.lookup_deadline if deadline is None else deadline,
                        clock=self.clock, parse_cri=cfg.parse_cri,
                        merge_log_key=cfg.merge_log_key if cfg.merge_log else None,
                        shared=shared, name_records=cfg.reply_names_record)

    def health(self, store: MetadataStore, group: Group,
               followers: Callable[[], list[int]]) -> Health:
        """What the leader tells ``kubemeta status``; sampled from now on."""
        from kubemeta.shell.health import Health

        health = Health(store, self.clock, config_problems=self.config_problems,
                        followers=followers,
                        snapshot_path=group.snapshot_path if self.cfg.snapshot_interval else None)
        health.start()
        return health

    def stats_writer(self, helper: Helper, name: str, config_problems: int) -> StatsWriter:
        """The counters writer; the helpers of a group add theirs up in state_dir."""
        from kubemeta.shell.nodecounters import NodeCounters
        from kubemeta.shell.stats import StatsWriter

        cfg = self.cfg
        node = None
        if cfg.share_helpers and (cfg.stats_file or cfg.prometheus_file) and \
                self.state_dir_problem() is None:
            node = NodeCounters(cfg.state_dir, self.group().key)
        return StatsWriter(helper.store, name, cfg.stats_interval, cfg.stats_file,
                           cfg.prometheus_file, self.clock, prometheus=helper.leads,
                           config_problems=config_problems, node=node, url=cfg.kubernetes_url)

    def table_keeper(self, helper: Helper) -> TableKeeper:
        """Table mode's writer, over what ``helper`` knows in whichever role."""
        from kubemeta.shell.tablekeeper import TableKeeper, TableSettings, TableSource

        cfg = self.cfg
        source = TableSource(Identifier(cfg.filename_patterns, cfg.container_name_patterns),
                             helper.store, helper.shared,
                             lambda: helper.role is Role.FOLLOWER, cfg.kubernetes_url)
        s = TableSettings(cfg.table_file, cfg.table_reload_file, cfg.table_log_files,
                          cfg.table_max_bytes, cfg.table_min_interval)
        return TableKeeper(s, source, self.clock)

    def sink_writer(self) -> SinkWriter:
        cfg = self.cfg
        assert cfg.sink is not None
        return SinkWriter(parse_sink(cfg.sink), cfg.sink_timeout,
                          Backoff(cfg.sink_retry_initial, cfg.sink_retry_max,
                                  cfg.sink_retry_initial), self.clock)
