"""The I/O shell: wire the pieces from a Config and pump rsyslog's pipe.

Everything here is plumbing; the decisions live in framing, record, identify,
store and enricher, which never touch a file descriptor or a clock of their own.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from kubemeta import internal
from kubemeta.cache.policy import Backoff
from kubemeta.cache.store import MetadataStore, Source, StoreSettings
from kubemeta.config import Config, parse_sink
from kubemeta.errors import ConfigError, SinkError
from kubemeta.kube.reflector import Reflector
from kubemeta.kube.watchview import StoreView
from kubemeta.model.identify import Identifier
from kubemeta.model.schema import Shaper
from kubemeta.share.sharedview import ViewSlot
from kubemeta.shell.enricher import Enricher
from kubemeta.shell.sink import SinkWriter
from kubemeta.wire.framing import Frame, LineFramer
from kubemeta.wire.omprog import OmprogSession
from kubemeta.wire.record import RecordReader

log = logging.getLogger("kubemeta")


def api_source_factory(cfg: Config) -> Callable[[], Source]:
    shaper = Shaper(cfg.de_dot, cfg.de_dot_separator, cfg.annotation_match, cfg.extra_fields)

    def make() -> Source:
        from kubemeta.kube import kubeapi  # the slow import happens in a worker thread

        return kubeapi.ApiSource(cfg, shaper)  # type: ignore[return-value]

    return make


def store_settings(cfg: Config) -> StoreSettings:
    return StoreSettings(
        pod_ttl=cfg.pod_cache_ttl, namespace_ttl=cfg.namespace_cache_ttl,
        not_found_ttl=cfg.not_found_ttl, error_retry_interval=cfg.error_retry_interval,
        pod_cache_size=cfg.pod_cache_size, namespace_cache_size=cfg.namespace_cache_size,
        workers=cfg.lookup_workers, breaker_threshold=cfg.breaker_threshold,
        backoff=Backoff(cfg.retry_initial, cfg.retry_max, cfg.retry_jitter),
        max_request_rate=cfg.max_request_rate, request_burst=cfg.request_burst,
        deleted_quiet=cfg.deleted_pod_quiet_period, deleted_max_age=cfg.deleted_pod_max_age,
        deleted_max=cfg.pod_cache_size)


def source_factory(cfg: Config, box: list[MetadataStore]) -> Callable[[], Source]:
    """What the store in ``box`` asks for metadata: the API, or (source: kubelet)
    the node's kubelet, which keeps its list in that store. The box may be filled
    after this returns, as long as it is before the factory is called."""
    if cfg.effective_source() != "kubelet":
        return api_source_factory(cfg)
    shaper = Shaper(cfg.de_dot, cfg.de_dot_separator, cfg.annotation_match, cfg.extra_fields)

    def make() -> Source:
        from kubemeta.kube import kubeletsource  # imports the client: off the first reply's path

        return kubeletsource.factory(cfg, shaper, box)()  # type: ignore[return-value]

    return make


def build_store(cfg: Config, clock: Callable[[], float] = time.monotonic) -> MetadataStore:
    box: list[MetadataStore] = []
    box.append(MetadataStore(source_factory(cfg, box), clock=clock,
                             settings=store_settings(cfg)))
    return box[0]


def start_watches(cfg: Config, store: MetadataStore, warm: bool = True) -> None:
    """source: watch. This node's pods and every namespace are listed, then
    watched, each by a reflector in a thread of its own, into ``store``, until
    the store is stopped. The first list waits a random part of
    ``watch_start_jitter`` only when ``warm`` (a snapshot is serving lines
    meanwhile): without one, every line of the wait would cost a GET, and a
    fleet's GETs cost the API more than its lists."""
    assert cfg.node_name is not None
    node = cfg.node_name
    shaper = Shaper(cfg.de_dot, cfg.de_dot_separator, cfg.annotation_match, cfg.extra_fields)
    backoff = Backoff(cfg.retry_initial, cfg.retry_max, cfg.retry_jitter)
    rng = random.Random()
    jitter = cfg.watch_start_jitter if warm else 0.0

    def timeout() -> float:
        # Spread the watches' ends, so a fleet does not reconnect in step.
        return cfg.watch_timeout * (1 + rng.random())

    def run() -> None:
        # The wait comes before the client's import too: its half second of CPU
        # would slow the replies that the snapshot is serving meanwhile.
        if jitter > 0:
            if store.stopped.wait(rng.uniform(0, jitter)):
                return
            store.expect_list("pod")
            store.expect_list("ns")
        try:
            from kubemeta.kube import kubeapi  # the slow import, off the first reply's path

            api = kubeapi.KubeApi(cfg)
        except ConfigError as e:
            store.list_over("pod")
            store.list_over("ns")
            log.error("cannot watch the Kubernetes API: %s", e, extra={"event": "config_error"})
            return
        except Exception as e:  # lookups must not wait for a list that never comes
            store.list_over("pod")
            store.list_over("ns")
            internal.report("building the watch client", e)
            return
        pods = Reflector(
            f"pods on node {node}", lambda: api.list_pods(node),
            lambda rv: api.watch_pods(node, rv, timeout()),
            StoreView(store, "pod", shaper, f"pods on node {node}"), backoff,
            sleep=store.stopped.wait, rng=rng)
        namespaces = Reflector(
            "namespaces", api.list_namespaces, lambda rv: api.watch_namespaces(rv, timeout()),
            StoreView(store, "ns", shaper, "namespaces"), backoff,
            sleep=store.stopped.wait, rng=rng)
        threading.Thread(target=namespaces.run, args=(store.stopped,),
                         name="kubemeta-watch-namespaces", daemon=True).start()
        pods.run(store.stopped)

    if jitter == 0:
        # Before the thread runs: a lookup made meanwhile (a follower's question,
        # say) must wait for the list rather than cost a GET.
        store.expect_list("pod")
        store.expect_list("ns")
    threading.Thread(target=run, name="kubemeta-watch-pods", daemon=True).start()


def build_enricher(cfg: Config, store: MetadataStore | None,
                   deadline: float | None = None, shared: ViewSlot | None = None) -> Enricher:
    reader = RecordReader(cfg.filename_path, cfg.container_name_path, cfg.container_id_path)
    identifier = Identifier(cfg.filename_patterns, cfg.container_name_patterns)
    return Enricher(reader, identifier, store, cfg.kubernetes_url,
                    cfg.lookup_deadline if deadline is None else deadline,
                    parse_cri=cfg.parse_cri,
                    merge_log_key=cfg.merge_log_key if cfg.merge_log else None,
                    shared=shared)


def build_sink_writer(cfg: Config) -> SinkWriter:
    assert cfg.sink is not None
    return SinkWriter(parse_sink(cfg.sink), cfg.sink_timeout,
                      Backoff(cfg.sink_retry_initial, cfg.sink_retry_max, cfg.sink_retry_initial))


class _Stop(Exception):
    pass


class PipeServer:
    """Reads lines from ``in_fd``, writes one answer per line to ``out_fd``, in order.

    ``respond`` is the mode: the enricher's reply for mmexternal, a status line
    for omprog. ``greeting`` is written first (omprog's initial ``OK``).
    """

    READ_SIZE = 1 << 16

    def __init__(self, respond: Callable[[Frame], bytes], framer: LineFramer, in_fd: int = 0,
                 out_fd: int = 1, greeting: bytes = b"",
                 on_hup: Callable[[], None] | None = None, busy_poll: float = 0.0) -> None:
        self._busy_poll = busy_poll
        self._respond = respond
        self._greeting = greeting
        self._on_hup = on_hup
        self._framer = framer
        self._in = in_fd
        self._out = out_fd
        self._reading = False
        self._stopping = False
        self.lines = 0

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if self._on_hup is None:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        else:
            hup = self._on_hup
            signal.signal(signal.SIGHUP, lambda signum, frame: hup())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        # Interrupt a blocking read only: a reply being written must still go out whole.
        if self._reading:
            raise _Stop

    def serve(self) -> str:
        """Returns why it stopped: 'eof', 'signal' or 'pipe closed'."""
        reply = self._respond
        feed = self._framer.feed
        try:
            if self._greeting:
                self._write_all(self._greeting)
            poller = None
            if self._busy_poll > 0:
                poller = select.poll()  # once, not once per line
                poller.register(self._in, select.POLLIN)
            while not self._stopping:
                if poller is not None:
                    self._spin(poller)
                self._reading = True
                try:
                    data = os.read(self._in, self.READ_SIZE)
                finally:
                    self._reading = False
                if not data:
                    if self._framer.pending():
                        log.info("stdin closed in the middle of a line; it had no reader left",
                                 extra={"event": "eof_partial"})
                    return "eof"
                frames = feed(data)
                if not frames:
                    continue
                self.lines += len(frames)
                out = reply(frames[0]) if len(frames) == 1 else b"".join(map(reply, frames))
                self._write_all(out)
        except _Stop:
            return "signal"
        except BrokenPipeError:
            return "pipe closed"
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.EBADF):
                return "pipe closed"
            raise
        return "signal"

    def _spin(self, poller: select.poll) -> None:
        """Wait for the next line awake, for at most ``busy_poll`` seconds: rsyslog
        sends it right after it took the reply, and a process that slept must be
        woken up, which costs more than the line itself."""
        end = time.perf_counter() + self._busy_poll
        while not poller.poll(0) and time.perf_counter() < end:
            pass

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._out, view)
            view = view[n:]


class OmprogResponder:
    """omprog mode: enrich, hand the sink what the protocol says, answer with a status."""

    def __init__(self, enricher: Enricher, writer: SinkWriter) -> None:
        self._session = OmprogSession(enricher.enriched)
        self._writer = writer
        self._counters = enricher.counters

    def __call__(self, frame: Frame) -> bytes:
        step = self._session.step(frame)
        if step.data is not None:
            try:
                self._writer.write(step.data)
            except SinkError as e:
                self._counters.sinkfailures += 1
                # One line, no newline inside: omprog reads exactly one.
                return f"Error: {e}".replace("\n", " ").encode("utf-8", "replace")[:1000] + b"\n"
            self._counters.sinklines += step.data.count(b"\n")
        return step.status.encode() + b"\n"
