from __future__ import annotations

import pytest

from kubemeta.config import DEFAULT_CONTAINER_NAME_PATTERNS, DEFAULT_FILENAME_PATTERNS
from kubemeta.model.identify import Identifier, PodRef
from kubemeta.wire.record import RecordFields

ID = "0123456789abcdef" * 4


@pytest.fixture
def ident() -> Identifier:
    return Identifier(DEFAULT_FILENAME_PATTERNS, DEFAULT_CONTAINER_NAME_PATTERNS)


def fn(name: str) -> RecordFields:
    return RecordFields(name, None, None)


@pytest.mark.parametrize(("path", "want"), [
    (f"/var/log/containers/web-1_shop_app-{ID}.log", PodRef("shop", "web-1", "app", ID, None)),
    # container names with dashes split at the last dash, as mmkubernetes does
    (f"/var/log/containers/web-1_shop_istio-proxy-{ID}.log",
     PodRef("shop", "web-1", "istio-proxy", ID, None)),
    (f"/var/log/containers/my.pod.v2_ns_c-{ID}.log", PodRef("ns", "my.pod.v2", "c", ID, None)),
    ("/var/log/pods/shop_web-1_4b5fca9b-cafc-427f-8f1b-d78b4ceafaec/app/0.log",
     PodRef("shop", "web-1", "app", None, "4b5fca9b-cafc-427f-8f1b-d78b4ceafaec")),
    ("/var/log/pods/shop_web-1_uid/app/12.log", PodRef("shop", "web-1", "app", None, "uid")),
])
def test_file_names(ident: Identifier, path: str, want: PodRef) -> None:
    assert ident.identify(fn(path)) == want


@pytest.mark.parametrize("path", [
    "/var/log/syslog",
    f"/var/log/containers/web-1_shop_app-{ID}.log.1",      # rotated: not the live file
    f"/var/log/containers/web-1_app-{ID}.log",             # no namespace
    "/var/log/containers/web-1_shop_app.log",              # no container id
    f"/var/log/containers/_shop_app-{ID}.log",             # empty pod
    "/var/log/pods/shop_web-1_uid/app/current.log",
    "",
])
def test_not_a_container_log(ident: Identifier, path: str) -> None:
    assert ident.identify(fn(path)) is None


def test_container_name_with_and_without_hash(ident: Identifier) -> None:
    hashed = RecordFields(None, "k8s_app.1a2b3c_web-1_shop_uid-1_0", "cid")
    plain = RecordFields(None, "k8s_app_web-1_shop_uid-1_3", "cid")
    assert ident.identify(hashed) == PodRef("shop", "web-1", "app", "cid", "uid-1")
    assert ident.identify(plain) == PodRef("shop", "web-1", "app", "cid", "uid-1")


def test_container_name_needs_container_id_and_falls_back_to_file_name(ident: Identifier) -> None:
    # As mmkubernetes: CONTAINER_NAME counts only together with CONTAINER_ID_FULL.
    src = RecordFields(f"/var/log/containers/a_b_c-{ID}.log", "k8s_app_web-1_shop_uid_0", None)
    assert ident.identify(src) == PodRef("b", "a", "c", ID, None)
    src = RecordFields(f"/var/log/containers/a_b_c-{ID}.log", "not-kubernetes", "cid")
    assert ident.identify(src) == PodRef("b", "a", "c", ID, None)


def test_custom_patterns_with_named_groups() -> None:
    ident = Identifier([r"^/logs/(?P<namespace_name>\w+)/(?P<pod_name>[\w-]+)/"
                        r"(?P<container_name>\w+)\.log$"], [])
    assert ident.identify(fn("/logs/ns/pod-1/main.log")) == PodRef("ns", "pod-1", "main",
                                                                   None, None)


def test_memo_stays_bounded(ident: Identifier) -> None:
    for i in range(Identifier.MEMO_SIZE * 2 + 5):
        ident.identify(fn(f"/var/log/containers/p{i}_ns_c-{ID}.log"))
    assert len(ident._memo) <= Identifier.MEMO_SIZE


@pytest.mark.parametrize(("ref", "ok"), [
    (PodRef("shop", "web-1", "c", None, None), True),
    (PodRef("shop", "my.pod", "c", None, None), True),
    (PodRef("Shop", "web-1", "c", None, None), False),
    (PodRef("shop", "../../secrets", "c", None, None), False),
    (PodRef("shop", "a/b", "c", None, None), False),
    (PodRef("shop", "x" * 300, "c", None, None), False),
])
def test_only_valid_names_reach_the_api(ref: PodRef, ok: bool) -> None:
    assert ref.valid_for_api() is ok


def test_a_name_with_a_trailing_newline_is_no_name() -> None:
    ident = Identifier(DEFAULT_FILENAME_PATTERNS, DEFAULT_CONTAINER_NAME_PATTERNS)
    fn = "/var/log/containers/web-1_shop_app-" + "a" * 64 + ".log\n"
    assert ident.identify(RecordFields(fn, None, None, "m")) is None
    assert not PodRef("shop", "web-1\n", "app", None, None).valid_for_api()
    assert not PodRef("shop\n", "web-1", "app", None, None).valid_for_api()
