"""source: watch. This node's pods and every namespace are listed, then
watched, each by a reflector in a thread of its own, into the store, until the
store is stopped; with extra_fields' node_labels, the node's object too."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kubemeta import internal
from kubemeta.cache.policy import Backoff
from kubemeta.cache.store import MetadataStore
from kubemeta.errors import ConfigError
from kubemeta.kinds import Kind
from kubemeta.kube.kubeapi import KubeApi
from kubemeta.kube.reflector import Reflector
from kubemeta.kube.storefeed import StoreFeed
from kubemeta.model.schema import Shaper

log = logging.getLogger("kubemeta.kube.watches")


@dataclass(frozen=True)
class WatchSettings:
    node: str
    timeout: float       # a watch ends after this (times 1 to 2), and is made again
    start_jitter: float  # a warm helper's first list waits up to this
    backoff: Backoff
    node_labels: bool = False  # extra_fields: node_labels: the node object is watched too


def start_watches(store: MetadataStore, make_api: Callable[[], KubeApi], shaper: Shaper,
                  s: WatchSettings, warm: bool, rng: random.Random | None = None) -> None:
    """The first list waits a random part of ``start_jitter`` only when ``warm``
    (a snapshot is serving lines meanwhile): without one, every line of the wait
    would cost a GET, and a fleet's GETs cost the API more than its lists.
    ``make_api`` runs in the watch thread: the client's import is slow."""
    node = s.node
    rng = rng or random.Random()
    jitter = s.start_jitter if warm else 0.0

    def timeout() -> float:
        # Spread the watches' ends, so a fleet does not reconnect in step.
        return s.timeout * (1 + rng.random())

    def run() -> None:
        # The wait comes before the client's import too: its half second of CPU
        # would slow the replies that the snapshot is serving meanwhile.
        if jitter > 0:
            if store.stopped.wait(rng.uniform(0, jitter)):
                return
            store.expect_list(Kind.POD)
            store.expect_list(Kind.NS)
        try:
            api = make_api()
        except ConfigError as e:
            store.list_over(Kind.POD)
            store.list_over(Kind.NS)
            log.error("cannot watch the Kubernetes API: %s", e, extra={"event": "config_error"})
            return
        except Exception as e:  # lookups must not wait for a list that never comes
            store.list_over(Kind.POD)
            store.list_over(Kind.NS)
            internal.report("building the watch client", e)
            return
        pods = Reflector(
            f"pods on node {node}", lambda: api.list_pods(node),
            lambda rv: api.watch_pods(node, rv, timeout()),
            StoreFeed(store, Kind.POD, shaper, f"pods on node {node}", resource="pods"), s.backoff,
            sleep=store.retry_wait, rng=rng)
        namespaces = Reflector(
            "namespaces", api.list_namespaces, lambda rv: api.watch_namespaces(rv, timeout()),
            StoreFeed(store, Kind.NS, shaper, "namespaces", resource="namespaces"), s.backoff,
            sleep=store.retry_wait, rng=rng)
        threading.Thread(target=namespaces.run, args=(store.stopped,),
                         name="kubemeta-watch-namespaces", daemon=True).start()
        if s.node_labels:
            feed = StoreFeed(store, Kind.NODE, shaper, f"node {node}", resource="nodes",
                             node=node)
            threading.Thread(target=Reflector(
                f"node {node}", lambda: api.list_node(node),
                lambda rv: api.watch_node(node, rv, timeout()), feed, s.backoff,
                sleep=store.retry_wait, rng=rng).run, args=(store.stopped,),
                name="kubemeta-watch-node", daemon=True).start()
        pods.run(store.stopped)

    if jitter == 0:
        # Before the thread runs: a lookup made meanwhile (a follower's question,
        # say) must wait for the list rather than cost a GET.
        store.expect_list(Kind.POD)
        store.expect_list(Kind.NS)
    threading.Thread(target=run, name="kubemeta-watch-pods", daemon=True).start()
