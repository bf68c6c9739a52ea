"""The shared view and the replies spliced from it: byte for byte the replies a
leader builds from decoded metadata, with either JSON codec; nonsense refused."""

from __future__ import annotations

import contextlib
import itertools
import math
import random

import pytest

from kubemeta import jsonlib
from kubemeta.model.identify import PodRef
from kubemeta.model.replyparts import ns_part, pod_parts, splice
from kubemeta.model.schema import NamespaceMeta, PodMeta, same_pod
from kubemeta.model.schema import reply_object as built
from kubemeta.share.sharedview import View, ViewError, encode

CODECS = [c for c in (jsonlib.STDLIB, jsonlib.ORJSON) if c is not None]
URL = "https://api.example:6443"

PODS = [
    PodMeta("uid-web", {"app": "web", "app_kubernetes_io/name": "shop"},
            {"note": 'quoted "x" \\ and\nnewline'}, "node-1", ("cid-a", "cid-b")),
    PodMeta(None, None, None, None),
    PodMeta("uid-ünï", {"ключ": "значение", "emoji": "\U0001f600"}, {}, "node-1", ("c",),
            (("pod_ip", "10.0.0.7"), ("deployment", "web")),
            {"app": ("nginx:1.25", "sha256:abc"), "side": (None, "sha256:d"),
             "init": (None, None)}),
    PodMeta("uid-empty", {}, None, "node-2", (), (), {}),
    # log control: a sampled pod with one container excluded, one with its image
    PodMeta("uid-lc", {"app": "lc"}, None, "node-1", ("d",), (("kubemeta_sample", "250"),),
            {"app": ("nginx:1.25", None)}, ("app", "sidecar")),
]
NAMESPACES = [
    NamespaceMeta("ns-uid", {"team": "a"}, {"owner": "b"}, "2026-01-01T00:00:00Z"),
    NamespaceMeta(None, None, None, None),
    NamespaceMeta("ns-2", {}, None, None),
]


def reply_object(ref: PodRef, pod: PodMeta | None, ns: NamespaceMeta | None,
                 url: str) -> dict[str, object]:
    """The reply a leader builds (its enricher lends no pod to a line of another uid)."""
    return built(ref, pod if pod is not None and same_pod(ref, pod.uid) else None, ns, url)


REFS = [
    PodRef("shop", "web-1", "app", "cid-a", None),
    PodRef("shop", "web-1", "side", None, "uid-web"),
    PodRef("shop", "web-1", "app", None, "uid-other"),  # a recreated pod of that name
    PodRef("shop", "web-1", "init", "x" * 64, None),
]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_spliced_replies_are_the_replies_built_from_metadata(codec: jsonlib.Codec) -> None:
    for ref, pod, ns in itertools.product(REFS, [None, *PODS], [None, *NAMESPACES]):
        want = codec.dumps(reply_object(ref, pod, ns, URL)) + b"\n"
        got = splice(ref, None if pod is None else pod_parts(pod, codec.dumps),
                     None if ns is None else ns_part(ns, codec.dumps), URL, codec.dumps)
        assert got == want, (ref, pod, ns)
        assert codec.loads(got) == reply_object(ref, pod, ns, URL)


def view_of(dumps: jsonlib.Codec) -> tuple[View, bytes]:
    pods = [(("shop", f"web-{i}"), pod, 100.0 + i) for i, pod in enumerate(PODS)]
    nss = [(f"ns{i}", ns, math.inf) for i, ns in enumerate(NAMESPACES)]
    gone = PodMeta("uid-gone", {"app": "old"}, None, "node-1", ("cid-gone-1", "cid-gone-2"))
    data = encode(pods, nss, [(gone, 50.0)], 1.7e9, dumps.dumps)
    return View(data), data


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_a_view_finds_each_entry_and_splices_the_same_reply(codec: jsonlib.Codec) -> None:
    view, _ = view_of(codec)
    assert view.has_deleted and view.published == 1.7e9
    for i, pod in enumerate(PODS):
        got = view.pod("shop", f"web-{i}")
        assert got is not None and got[0] == 100.0 + i
        for ref in REFS:
            assert splice(ref, got[1], None, URL, codec.dumps) == \
                codec.dumps(reply_object(ref, pod, None, URL)) + b"\n"
    for i, ns in enumerate(NAMESPACES):
        found = view.namespace(f"ns{i}")
        assert found == (math.inf, ns_part(ns, codec.dumps))
    assert view.pod("shop", "web-99") is None and view.pod("ns0", "web-0") is None
    assert view.namespace("shop") is None
    by_uid, by_cid = view.deleted("uid-gone", None), view.deleted(None, "cid-gone-2")
    assert by_uid is not None and by_uid == by_cid and by_uid[0] == 50.0
    assert view.deleted("uid-web", "cid-a") is None  # a live pod is found by name only


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_a_view_decodes_to_metadata_that_gives_the_same_replies(codec: jsonlib.Codec) -> None:
    view, _ = view_of(codec)
    contents = view.contents(now=80.0, loads=codec.loads)
    pods = dict(contents.pods)
    assert sorted(pods) == [("shop", f"web-{i}") for i in range(len(PODS))]
    for i, pod in enumerate(PODS):
        for ref in REFS:
            assert reply_object(ref, pods[("shop", f"web-{i}")], None, URL) == \
                reply_object(ref, pod, None, URL)
        assert pods[("shop", f"web-{i}")].container_ids == pod.container_ids
    assert dict(contents.namespaces) == {f"ns{i}": ns for i, ns in enumerate(NAMESPACES)}
    [(gone, age)] = contents.deleted
    assert gone.uid == "uid-gone" and gone.container_ids == ("cid-gone-1", "cid-gone-2")
    assert age == 30.0


def test_an_empty_view_finds_nothing() -> None:
    view = View(encode([], [], [], 0.0, jsonlib.dumps))
    assert not view.has_deleted and view.keys == 0
    assert view.pod("a", "b") is None and view.namespace("a") is None
    assert view.contents(0.0, jsonlib.loads).pods == []


def test_many_entries_all_found() -> None:
    pods = [(("ns", f"p{i}"), PodMeta(f"u{i}", {"i": str(i)}, None, "n"), 1.0)
            for i in range(3000)]
    view = View(encode(pods, [], [], 0.0, jsonlib.dumps))
    assert view.keys == 3000
    for i in range(3000):
        got = view.pod("ns", f"p{i}")
        assert got is not None and got[1].uid == f"u{i}"


@pytest.mark.parametrize("bad", [b"", b"KMVIEW", b"x" * 64])
def test_what_is_not_a_view_is_refused(bad: bytes) -> None:
    with pytest.raises(ViewError):
        View(bad)


def test_a_view_cut_short_or_grown_is_refused() -> None:
    _, data = view_of(jsonlib.ACTIVE)
    for bad in (data[:-1], data[: len(data) // 2], data + b"\0"):
        with pytest.raises(ViewError, match="cut short"):
            View(bad)


def test_corrupt_views_find_nothing_or_are_refused_never_crash() -> None:
    """Flipped bytes anywhere: opening refuses, or lookups answer or find nothing;
    decoding everything refuses with ViewError. Nothing else is ever raised."""
    _, data = view_of(jsonlib.ACTIVE)
    rng = random.Random(7)
    for _ in range(400):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        try:
            view = View(bytes(bad))
        except ViewError:
            continue
        for i in range(len(PODS)):
            view.pod("shop", f"web-{i}")
        for i in range(len(NAMESPACES)):
            view.namespace(f"ns{i}")
        view.deleted("uid-gone", "cid-gone-1")
        with contextlib.suppress(ViewError):
            view.contents(0.0, jsonlib.loads)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_an_entry_that_cannot_be_encoded_is_left_out_and_the_rest_kept(
        codec: jsonlib.Codec) -> None:
    surrogate = PodMeta("uid-s", {"bad": "\ud800"}, None, "node-1")
    long_name = PodMeta("uid-l", None, None, "node-1", images={"c" * 70000: ("img", None)})
    pods = [(("shop", "s"), surrogate, 1.0), (("shop", "l"), long_name, 1.0),
            (("shop", "\udfff"), PODS[0], 1.0), (("shop", "ok"), PODS[0], 1.0)]
    nss = [("bad", NamespaceMeta("u", {"x": "\ud800"}, None, None), 1.0),
           ("shop", NAMESPACES[0], 1.0)]
    view = View(encode(pods, nss, [(surrogate, 1.0)], 0.0, codec.dumps))
    assert view.keys == 2 and not view.has_deleted
    assert view.pod("shop", "ok") is not None and view.namespace("shop") is not None
    assert view.pod("shop", "s") is None and view.pod("shop", "l") is None
