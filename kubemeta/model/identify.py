"""Which pod wrote a record: file name or journald CONTAINER_NAME -> PodRef.

Pure logic over strings. Results are memoised per file name because a node
has a few hundred log files and every line of a file names the same pod.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

from kubemeta.wire.record import RecordFields

# Kubernetes object names: DNS-1123 subdomain (pods) or label (namespaces).
# Anything else cannot exist in the API, so we never send it there.
# \Z, not $: "$" also matches before a trailing newline, which is no name.
_NAME_RX = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")


class PodRef(NamedTuple):
    namespace: str
    pod: str
    container: str
    container_id: str | None
    pod_uid: str | None

    def valid_for_api(self) -> bool:
        return _valid_names(self.namespace, self.pod)


@functools.lru_cache(maxsize=4096)
def _valid_names(namespace: str, pod: str) -> bool:
    # Asked on every line; the answer depends only on the names.
    return bool(_NAME_RX.match(namespace) and _NAME_RX.match(pod))


class Identifier:
    """Applies the configured patterns, file-name patterns last as mmkubernetes does."""

    MEMO_SIZE = 4096

    def __init__(self, filename_patterns: Iterable[str],
                 container_name_patterns: Iterable[str]) -> None:
        self._fn = [re.compile(p) for p in filename_patterns]
        self._cn = [re.compile(p) for p in container_name_patterns]
        self._memo: dict[str, PodRef | None] = {}

    def identify(self, src: RecordFields) -> PodRef | None:
        # mmkubernetes prefers CONTAINER_NAME, and only with CONTAINER_ID_FULL.
        if src.container_name and src.container_id:
            ref = _match(self._cn, src.container_name, src.container_id)
            if ref is not None:
                return ref
        fn = src.filename
        if not fn:
            return None
        memo = self._memo
        try:
            return memo[fn]
        except KeyError:
            pass
        ref = _match(self._fn, fn, None)
        if len(memo) >= self.MEMO_SIZE:
            memo.clear()  # rotated or hostile file names: start over, stay bounded
        memo[fn] = ref
        return ref


def _match(patterns: list[re.Pattern[str]], text: str, container_id: str | None) -> PodRef | None:
    if not text.isprintable():
        return None  # a newline or control character: no pattern's "$" may accept it
    for rx in patterns:
        m = rx.match(text)
        if m is None:
            continue
        g = m.groupdict()
        ns, pod, cont = g.get("namespace_name"), g.get("pod_name"), g.get("container_name")
        if not (ns and pod and cont):
            continue
        return PodRef(ns, pod, cont, container_id or g.get("container_id") or None,
                      g.get("pod_uid") or None)
    return None
