"""source: kubelet. Pods come from the node's kubelet (``GET /pods``), which
keeps answering while the control plane restarts; namespaces still come from
the API, through the store's usual GETs and their long TTL.

The kubelet's list is fetched every ``kubelet_refresh_interval`` seconds, and
on a miss (a line from a pod not in the last list), but never more often than
every ``kubelet_min_interval``: however many lines ask, one request goes out.
Each list replaces the store's view of this node's pods, so a pod missing from
it is a deleted one. The store calls ``pod`` and ``namespace`` from its lookup
workers, as it would call the API's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubemeta import internal
from kubemeta.cache.store import MetadataStore
from kubemeta.config import Config
from kubemeta.errors import ApiError, ApiNotFound
from kubemeta.kube.kubeapi import ApiSource, KubeApi
from kubemeta.kube.watchview import StoreView
from kubemeta.model.schema import NamespaceMeta, PodMeta, Shaper

log = logging.getLogger("kubemeta.kubelet")


class KubeletSource:
    def __init__(self, cfg: Config, shaper: Shaper, store: MetadataStore,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = ApiSource(cfg, shaper)
        self.kubelet = KubeApi(cfg, kubelet=True)
        self._view = StoreView(store, "pod", shaper, f"pods from the kubelet at {cfg.kubelet_url}",
                               verb="polling")
        self._clock = clock
        self._min = cfg.kubelet_min_interval
        self._every = cfg.kubelet_refresh_interval
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._known: dict[tuple[str, str], PodMeta] = {}
        self.fetches = 0

    def refresh(self, force: bool = False) -> None:
        """Fetch the kubelet's pods unless that was done a moment ago. Raises ApiError."""
        with self._lock:  # callers that arrive during a fetch share its answer
            if not force and self._clock() - self._last < self._min:
                return
            self._last = self._clock()
            self.fetches += 1
            try:
                self._known = self._view.replace(self.kubelet.kubelet_pods())
            except ApiError as e:
                self._view.stale(e)
                raise

    def pod(self, namespace: str, name: str) -> PodMeta:
        self.refresh()
        meta = self._known.get((namespace, name))
        if meta is None:
            # The last list may predate the pod: wait out the rate limit (in this
            # lookup worker, never in a line's path) and look once more, rather
            # than have a new pod taken for a missing one.
            wait = self._min - (self._clock() - self._last)
            if wait > 0:
                time.sleep(wait)
                self.refresh()
                meta = self._known.get((namespace, name))
        if meta is None:
            raise ApiNotFound("404 Not Found (not among the kubelet's pods)", 404)
        return meta

    def namespace(self, name: str) -> NamespaceMeta:
        ns: NamespaceMeta = self.api.namespace(name)
        return ns

    def on_unauthorized(self) -> None:
        self.api.on_unauthorized()
        self.kubelet.on_unauthorized()

    def start(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    self.refresh(force=True)
                except ApiError:
                    pass  # logged once by the view; the next round tries again
                except Exception as e:  # the poller must never die
                    internal.report("the kubelet poller", e)
                stop.wait(self._every)

        threading.Thread(target=run, name="kubemeta-kubelet", daemon=True).start()


def factory(cfg: Config, shaper: Shaper, store_box: list[Any]) -> Callable[[], KubeletSource]:
    """For MetadataStore, which is built before the source that feeds it."""

    def make() -> KubeletSource:
        store = store_box[0]
        src = KubeletSource(cfg, shaper, store)
        src.start(store.stopped)
        return src

    return make
