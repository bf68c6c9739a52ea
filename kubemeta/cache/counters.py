"""The counters a store keeps: mmkubernetes's names first (rsyslog_exporter's
dashboards read them from impstats), then kubemeta's own; and the health of
each list-and-watch feeding the store."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Counters:
    """mmkubernetes's counter names, then our own."""

    recordseen: int = 0
    namespacemetadatasuccess: int = 0
    namespacemetadatanotfound: int = 0
    namespacemetadatabusy: int = 0
    namespacemetadataerror: int = 0
    podmetadatasuccess: int = 0
    podmetadatanotfound: int = 0
    podmetadatabusy: int = 0
    podmetadataerror: int = 0
    podcachehits: int = 0
    podcachemisses: int = 0
    namespacecachehits: int = 0
    namespacecachemisses: int = 0
    linesstale: int = 0          # served from metadata past its TTL
    linesfilenameonly: int = 0   # the pod was not known: file-name fields only
    linescri: int = 0            # CRI records unframed into log/stream/time
    linesdeletedpod: int = 0     # served with the metadata of a pod since deleted
    sinklines: int = 0           # omprog: lines the sink took
    sinkfailures: int = 0        # omprog: writes that failed and were answered with an error
    sharedviewtooold: int = 0    # a follower dropped its leader's view as too old
    kubeletfallbacklists: int = 0  # kubelet_fallback: the kubelet's lists asked for
    kubeletfallbackpods: int = 0   # pods taken from them while the API failed
    # API requests by verb and HTTP status ("get.200", "list.403", "watch.0"; 0: no answer)
    apirequests: Counter[str] = field(default_factory=Counter)


@dataclass
class FeedHealth:
    """One list-and-watch (pods, namespaces), as its reflector last found it."""

    up: bool = False                 # listed, and its watch not failing
    last_heard: float | None = None  # a list, a watch opened, an event or a bookmark
    last_error: str | None = None    # why it last failed
