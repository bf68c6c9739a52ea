"""What the store asks for metadata (its Fetcher): the API, or the kubelet.

``ApiFetcher``: a GET of one object, shaped into the metadata kubemeta emits.

``KubeletFetcher`` (source: kubelet): pods come from the node's kubelet
(``GET /pods``), which keeps answering while the control plane restarts;
namespaces still come from the API, through the store's usual GETs and their
long TTL. The kubelet's list is fetched every ``refresh_interval`` seconds,
and on a miss (a line from a pod not in the last list), but never more often
than every ``min_interval``: however many lines ask, one request goes out.
Each list replaces the store's view of this node's pods, so a pod missing from
it is a deleted one.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from kubemeta import internal
from kubemeta.cache.store import Fetcher, MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import ApiError, ApiNotFound
from kubemeta.kinds import Kind
from kubemeta.kube.kubeapi import KubeApi
from kubemeta.kube.storefeed import StoreFeed
from kubemeta.model.schema import NamespaceMeta, PodMeta, Shaper


class ApiFetcher(Fetcher):
    def __init__(self, api: KubeApi, shaper: Shaper) -> None:
        self.api = api
        self._shaper = shaper

    def pod(self, namespace: str, name: str) -> PodMeta:
        return self._shaper.pod(self.api.get_pod(namespace, name), name)

    def namespace(self, name: str) -> NamespaceMeta:
        return self._shaper.namespace(self.api.get_namespace(name), name)

    def on_unauthorized(self) -> None:
        self.api.on_unauthorized()


@dataclass(frozen=True)
class KubeletPolling:
    min_interval: float      # never ask the kubelet more often than this
    refresh_interval: float  # ask it this often anyway


class KubeletFetcher(Fetcher):
    def __init__(self, api: ApiFetcher, kubelet: KubeApi, store: MetadataStore, shaper: Shaper,
                 polling: KubeletPolling, clock: Clock = SYSTEM) -> None:
        self.api = api
        self.kubelet = kubelet
        self._view = StoreFeed(store, Kind.POD, shaper,
                               f"pods from the kubelet at {kubelet.url}", verb="polling")
        self._clock = clock
        self._min = polling.min_interval
        self._every = polling.refresh_interval
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
                self._clock.sleep(wait)
                self.refresh()
                meta = self._known.get((namespace, name))
        if meta is None:
            raise ApiNotFound("404 Not Found (not among the kubelet's pods)", 404)
        return meta

    def namespace(self, name: str) -> NamespaceMeta:
        return self.api.namespace(name)

    def on_unauthorized(self) -> None:
        self.api.on_unauthorized()
        self.kubelet.on_unauthorized()

    def poll(self) -> None:
        with contextlib.suppress(ApiError):  # logged once by the view; the next round retries
            self.refresh(force=True)

    def start(self, stop: threading.Event) -> None:
        internal.spawn("kubemeta-kubelet", "the kubelet poller", self.poll, stop,
                       every=self._every)
