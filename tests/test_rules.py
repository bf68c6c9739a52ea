"""The cache rules, pure: every call takes its ``now``, no thread or clock."""

from __future__ import annotations

import dataclasses
import math

from kubemeta.cache.rules import Caches, CacheSettings
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta

S = CacheSettings(pod_ttl=60, namespace_ttl=600, not_found_ttl=30, pod_cache_size=100,
                  namespace_cache_size=100, deleted_quiet=300, deleted_max_age=3600,
                  deleted_max=100)
KEY = ("shop", "web-1")
POD = PodMeta("uid-1", {"app": "web"}, None, "node-1", ("c" * 64,))
NEW = PodMeta("uid-2", {"app": "web"}, None, "node-1", ("d" * 64,))
NS = NamespaceMeta("ns-uid", {"team": "a"}, None, None)
BY_NAME = PodRef("shop", "web-1", "app", None, None)
BY_UID = PodRef("shop", "web-1", "app", None, "uid-1")
BY_CID = PodRef("shop", "web-1", "app", "c" * 64, None)


def test_an_answer_is_fresh_for_its_ttl_and_a_404_for_not_found_ttl() -> None:
    c = Caches(S)
    c.answered("pod", KEY, POD, 1000)
    c.answered("ns", "shop", NS, 1000)
    c.answered("pod", ("shop", "ghost"), None, 1000)
    seen = c.line(BY_NAME, 1059)
    assert seen.pod is not None and seen.pod.value == POD and not seen.pod_due
    assert seen.ns is not None and not seen.ns_due
    assert c.line(BY_NAME, 1060).pod_due  # stale: asked again, still served
    assert c.line(BY_NAME, 1060).pod is not None
    assert not c.is_due(c.entry("pod", ("shop", "ghost")), 1029)
    assert c.is_due(c.entry("pod", ("shop", "ghost")), 1030)


def test_a_watched_entry_never_goes_stale_and_a_get_answer_does_not_overwrite_it() -> None:
    c = Caches(S)
    c.put_watched("pod", KEY, POD)
    c.answered("pod", KEY, dataclasses.replace(POD, labels={"app": "old"}), 1000)
    seen = c.line(BY_NAME, 1e9)
    assert seen.pod is not None and seen.pod.value == POD and not seen.pod_due
    assert seen.pod.fresh_until == math.inf


def test_a_deleted_pod_is_found_by_uid_or_container_id_never_by_name() -> None:
    c = Caches(S)
    c.put_watched("pod", KEY, POD)
    c.forget_watched("pod", KEY, 1000)
    for ref in (BY_UID, BY_CID):
        seen = c.line(ref, 1001)
        assert seen.deleted and seen.pod is not None and seen.pod.value == POD
        assert not seen.pod_due  # a deleted pod is never asked for
    by_name = c.line(BY_NAME, 1001)
    assert by_name.pod is None and by_name.pod_due  # the name may be the next pod's
    assert c.deleted() == 1


def test_a_deleted_namespace_serves_its_last_lines_for_a_ttl() -> None:
    c = Caches(S)
    c.put_watched("ns", "shop", NS)
    c.forget_watched("ns", "shop", 1000)
    entry = c.entry("ns", "shop")
    assert entry is not None and entry.fresh_until == 1600


def test_a_known_pod_answered_404_is_kept_for_its_lines() -> None:
    c = Caches(S)
    c.answered("pod", KEY, POD, 1000)
    c.answered("pod", KEY, None, 1100)
    assert c.line(BY_UID, 1101).deleted


def test_tombstones_go_when_their_logs_are_quiet_or_they_are_too_old() -> None:
    c = Caches(S)
    c.put_watched("pod", KEY, POD)
    c.forget_watched("pod", KEY, 1000)
    c.put_watched("pod", ("shop", "web-2"), NEW)
    c.forget_watched("pod", ("shop", "web-2"), 1000)
    for t in range(1000, 4600, 200):  # web-1's logs are still read; web-2's are quiet
        c.line(BY_UID, t)
        c.sweep(t)
    assert c.deleted() == 1
    c.sweep(4601)  # deleted more than deleted_max_age ago, however busy its logs
    assert c.deleted() == 0


def test_the_sweep_runs_at_most_every_interval() -> None:
    c = Caches(S)
    c.put_watched("pod", KEY, POD)
    c.forget_watched("pod", KEY, 1000)
    c.sweep(1299)  # quiet, but not for deleted_quiet yet
    c.sweep(1301)  # quiet for longer now, but swept a moment ago
    assert c.deleted() == 1
    c.sweep(1299 + Caches.SWEEP_INTERVAL)
    assert c.deleted() == 0


def test_tombstones_are_bounded_oldest_first() -> None:
    c = Caches(dataclasses.replace(S, deleted_max=2))
    for i in range(3):
        key = ("shop", f"p{i}")
        c.put_watched("pod", key, PodMeta(f"uid-{i}", None, None, None))
        c.forget_watched("pod", key, 1000 + i)
    assert c.deleted() == 2
    assert not c.line(PodRef("shop", "p0", "app", None, "uid-0"), 1010).deleted
    assert c.line(PodRef("shop", "p2", "app", None, "uid-2"), 1010).deleted


def test_a_relisted_pod_was_not_deleted_after_all() -> None:
    c = Caches(S)
    c.put_watched("pod", KEY, POD)
    c.forget_watched("pod", KEY, 1000)
    c.put_watched("pod", KEY, POD)
    assert c.deleted() == 0


def test_a_complete_list_names_what_was_deleted_meanwhile() -> None:
    c = Caches(S)
    c.put_watched("pod", KEY, POD)
    c.put_watched("pod", ("shop", "web-2"), NEW)
    assert c.unlisted("pod", [("shop", "web-2")]) == {KEY}


def test_generation_moves_only_when_what_is_known_changes() -> None:
    c = Caches(S)
    g0 = c.generation
    c.put_watched("pod", KEY, POD)
    g1 = c.generation
    c.put_watched("pod", KEY, POD)  # the same again: a relist
    assert g0 < g1 == c.generation
    c.answered("ns", "shop", NS, 1000)
    assert c.generation > g1


def test_a_follower_forgets_answers_received_before_a_view_but_keeps_404s() -> None:
    c = Caches(S)
    c.answered("pod", KEY, POD, 1000)
    c.answered("pod", ("shop", "ghost"), None, 1000)
    c.answered("ns", "shop", NS, 1010)
    c.forget_known(1005)
    assert c.entry("pod", KEY) is None
    assert c.entry("pod", ("shop", "ghost")) is not None
    assert c.entry("ns", "shop") is not None


def test_preload_never_overwrites_and_spreads_staleness() -> None:
    c = Caches(S)
    c.answered("pod", KEY, NEW, 1000)
    old = PodMeta("uid-9", None, None, None)
    c.preload([(KEY, POD), (("shop", "web-2"), POD)], [("shop", NS)],
              [(old, 10.0), (PodMeta("uid-8", None, None, None), 4000.0)], 1000, lambda: 0.5)
    k = c.entry("pod", KEY)
    assert k is not None and k.value == NEW
    web2 = c.entry("pod", ("shop", "web-2"))
    assert web2 is not None and web2.fresh_until == 1030  # half its TTL
    assert c.deleted() == 1  # the one deleted longer ago than deleted_max_age is not kept
    assert c.export(1000)[2] == [(old, 10.0)]


ZONE = {"topology_kubernetes_io/zone": "eu-1a"}


def test_the_nodes_labels_reach_its_pods_however_they_came_and_those_known_before() -> None:
    c = Caches(S)
    other = ("shop", "elsewhere")
    c.answered("pod", KEY, POD, 0.0)  # known before the node's labels
    c.answered("pod", other, dataclasses.replace(POD, node_name="node-2"), 0.0)
    gen = c.generation
    assert c.node_labels("node-1", ZONE) is True and c.generation > gen
    assert c.pods[KEY].value.node_labels == ZONE  # type: ignore[union-attr]
    assert c.pods[other].value.node_labels is None  # type: ignore[union-attr]
    assert c.pods[KEY].fresh_until == 60.0  # not made fresher by it
    # Whatever brings a pod in afterwards: a GET, a watch, the kubelet, a snapshot.
    c.put_watched("pod", ("shop", "w"), NEW)
    c.stopgap(("shop", "k"), NEW, 1.0)
    c.preload([(("shop", "s"), NEW)], [], [], 1.0, lambda: 1.0)
    c.answered("pod", ("shop", "g"), NEW, 1.0)
    for key in ("w", "k", "s", "g"):
        assert c.pods[("shop", key)].value.node_labels == ZONE  # type: ignore[union-attr]
    gen = c.generation
    assert c.node_labels("node-1", dict(ZONE)) is False and c.generation == gen
    assert c.node_labels("node-1", {}) is True
    assert c.pods[KEY].value.node_labels == {}  # type: ignore[union-attr]
