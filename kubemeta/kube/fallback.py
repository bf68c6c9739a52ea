"""While the API fails, the node's kubelet stands in for the pods kubemeta does
not know yet (``kubelet_fallback``).

A control plane that restarts refuses connections, then answers 403 for a
while; the kubelet on the node keeps answering. A line that names a pod the
store does not know, while the API is failing, asks for the kubelet's list of
its pods: one list (at most every ``min_interval``) answers every line that
waits for it, and each pod it has that the store lacks is kept as a stopgap
(rules.Caches.stopgap), due at once, so that the API's answer replaces it as
soon as the API answers. The kubelet is never asked while the API works.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubemeta import internal
from kubemeta.cache.store import MetadataStore
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import ApiError, ShapeError
from kubemeta.kinds import Kind
from kubemeta.kube.storefeed import shape
from kubemeta.model.schema import PodMeta, Shaper

log = logging.getLogger("kubemeta.kube.fallback")


class KubeletFallback:
    def __init__(self, make_kubelet: Callable[[], Any], store: MetadataStore, shaper: Shaper,
                 min_interval: float, url: str, clock: Clock = SYSTEM) -> None:
        """``make_kubelet`` builds the kubelet's client (a KubeApi), on first use."""
        self._make = make_kubelet
        self._kubelet: Any = None
        self._store = store
        self._shaper = shaper
        self._min = min_interval
        self._url = url
        self._clock = clock
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._running: threading.Event | None = None
        self._outage_pods = 0  # taken from the kubelet since the API began failing
        self._active = False

    def ask(self) -> threading.Event:
        """A list of the kubelet's pods, begun now unless one is under way or ran
        less than ``min_interval`` ago; the event is set once its pods are in."""
        with self._lock:
            if self._running is not None:
                return self._running
            done = threading.Event()
            if self._clock() - self._last < self._min:
                done.set()
                return done
            self._last = self._clock()
            self._running = done
        threading.Thread(target=self._list, args=(done,), name="kubemeta-kubelet-fallback",
                         daemon=True).start()
        return done

    def api_back(self) -> None:
        """The API answers again: say what the kubelet stood in for, once."""
        if not self._active:  # no lock unless there is news
            return
        with self._lock:
            if not self._active:
                return
            self._active, pods = False, self._outage_pods
            self._outage_pods = 0
        log.warning("the Kubernetes API answers again; %d pods were served from the "
                    "kubelet meanwhile, and are asked of the API now", pods,
                    extra={"event": "kubelet_fallback_over"})

    def _list(self, done: threading.Event) -> None:
        try:
            if self._kubelet is None:
                self._kubelet = self._make()
            pods: dict[tuple[str, str], PodMeta] = {}
            for obj in self._kubelet.kubelet_pods():
                with contextlib.suppress(ShapeError):  # one odd pod spoils no other
                    shaped = shape(self._shaper, Kind.POD, obj)
                    if shaped is not None:
                        pods[shaped[0]] = shaped[1]
            added = self._store.stopgap(pods)
            self._store.counters.kubeletfallbacklists += 1
            self._store.counters.kubeletfallbackpods += added
            with self._lock:
                first, self._active = not self._active, True
                self._outage_pods += added
            if first:
                log.warning("the Kubernetes API is failing; pods it has not told kubemeta "
                            "about are taken from the kubelet at %s until it answers (%d "
                            "so far)", self._url, added,
                            extra={"event": "kubelet_fallback"})
        except ApiError as e:
            log.debug("the kubelet at %s could not stand in: %s", self._url, e.reason)
        except Exception as e:  # the waiting lines must be let go, whatever happened
            internal.report("asking the kubelet for pods", e)
        finally:
            with self._lock:
                self._running = None
            done.set()
