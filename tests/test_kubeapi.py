"""kubeapi against the emulator over real HTTPS: every way an answer goes wrong
becomes exactly one of kubemeta's errors, never a crash."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from apiemulator import ApiEmulator, make_namespace, make_pod
from apiemulator.server import Fault
from kubemeta import config
from kubemeta.app import App
from kubemeta.errors import (
    ApiBadResponse,
    ApiError,
    ApiForbidden,
    ApiNotFound,
    ApiServerError,
    ApiThrottled,
    ApiTooNew,
    ApiUnauthorized,
    ApiUnreachable,
    ShapeError,
)
from kubemeta.kube import kubeapi
from kubemeta.kube.fetchers import ApiFetcher
from kubemeta.model.schema import Shaper

from conftest import TOKEN


@pytest.fixture
def api(emulator: ApiEmulator) -> ApiFetcher:
    emulator.world.apply(make_namespace("shop"))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file, token=TOKEN,
                        api_read_timeout=1.0, api_connect_timeout=1.0)
    return ApiFetcher(App(cfg).api(), Shaper(True, "_", []))


def test_a_good_answer(api: ApiFetcher) -> None:
    assert api.pod("shop", "web-1").labels == {"app": "web"}
    with pytest.raises(ApiNotFound):
        api.pod("shop", "ghost")


@pytest.mark.parametrize(("fault", "error", "reason"), [
    (Fault("status", status=403), ApiForbidden, "403 Forbidden: pods \"web-1\" is forbidden"),
    (Fault("status", status=429, retry_after=7), ApiThrottled, "429 Too Many Requests"),
    (Fault("status", status=503), ApiServerError, "503 Service Unavailable"),
    (Fault("status", status=500), ApiServerError, "500 Internal Server Error"),
    (Fault("hang"), ApiUnreachable, "timed out"),
    (Fault("reset"), ApiUnreachable, ""),
    (Fault("tls"), ApiUnreachable, "TLS error"),
    (Fault("garbage"), ApiBadResponse, "not JSON"),
    (Fault("truncate"), ApiError, ""),
    (Fault("huge", size=5 * 1024 * 1024), ApiBadResponse, "larger than"),
    # every byte within the read timeout, the answer never within the request's time
    (Fault("trickle", seconds=0.1), ApiUnreachable, "took longer than 2 s in all"),
    # the unread rest arrives late: the connection must not go back to the pool
    (Fault("huge", size=5 * 1024 * 1024, pause_at=kubeapi.MAX_BODY_BYTES + 1, seconds=0.5),
     ApiBadResponse, "larger than"),
])
def test_faults_become_our_errors(api: ApiFetcher, emulator: ApiEmulator, fault: Fault,
                                  error: type[ApiError], reason: str) -> None:
    emulator.add_fault(fault)
    with pytest.raises(error) as e:
        api.pod("shop", "web-1")
    assert reason in e.value.reason
    if fault.retry_after:
        assert e.value.retry_after == fault.retry_after
    emulator.clear_faults()
    assert api.pod("shop", "web-1").labels == {"app": "web"}  # and it goes on


def test_an_answer_whose_headers_trickle_is_given_up_at_the_deadline(
        api: ApiFetcher, emulator: ApiEmulator) -> None:
    # 80 bytes of status line and headers, one every 0.2 s: each within the read
    # timeout, all of them four times the request's time.
    emulator.add_fault(Fault("trickle_headers", seconds=0.2, times=1))
    with pytest.raises(ApiUnreachable) as e:
        api.pod("shop", "web-1")
    assert "took longer than 2 s in all" in e.value.reason
    # Given up before the headers were in, not at the first read of the body.
    end = time.monotonic() + 60
    while emulator.world.by_kind["client_gave_up_on_headers"] == 0:
        assert time.monotonic() < end, "the client read the trickled headers to the end"
        time.sleep(0.05)
    assert api.pod("shop", "web-1").labels == {"app": "web"}  # and it goes on


def test_wrong_kind_is_a_shape_error(api: ApiFetcher, emulator: ApiEmulator) -> None:
    emulator.add_fault(Fault("wrong_kind"))
    with pytest.raises(ShapeError):
        api.pod("shop", "web-1")


def test_bad_token_is_unauthorized(emulator: ApiEmulator) -> None:
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file, token="nope")
    with pytest.raises(ApiUnauthorized):
        App(cfg).api().get_namespace("default")


def test_refused_and_dns(emulator: ApiEmulator) -> None:
    emulator.stop_listening()
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file, token=TOKEN)
    with pytest.raises(ApiUnreachable, match="connection refused"):
        App(cfg).api().get_namespace("default")
    cfg = config.Config(kubernetes_url="https://kubemeta-test.invalid:6443", token=TOKEN,
                        api_connect_timeout=2.0)
    with pytest.raises(ApiUnreachable, match="DNS lookup failed"):
        App(cfg).api().get_namespace("default")


def test_rotated_client_certificate_is_reloaded(emulator: ApiEmulator, tmp_path: Path) -> None:
    from apiemulator.pki import make_pki

    foreign = make_pki(str(tmp_path / "foreign"))  # a CA the API does not trust
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(Path(foreign.client_cert).read_bytes())
    key.write_bytes(Path(foreign.client_key).read_bytes())
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file,
                        client_cert_file=str(cert), client_key_file=str(key))
    api = App(cfg).api()
    with pytest.raises(ApiError):
        api.get_namespace("default")
    cert.write_bytes(Path(emulator.pki.client_cert).read_bytes())
    key.write_bytes(Path(emulator.pki.client_key).read_bytes())
    api.on_unauthorized()  # what the store does after a 401
    with pytest.raises(ApiNotFound):  # authenticated now: the namespace just is not there
        api.get_namespace("default")


def test_a_watch_from_a_version_the_server_has_not_reached_lists_again(
        emulator: ApiEmulator) -> None:
    """A restored etcd or a lagging replica: the API server waits, then answers 504
    ResourceVersionTooLarge; kubemeta lists again, as client-go does."""
    from kubemeta.cache.policy import Backoff
    from kubemeta.kube.reflector import Reflector

    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    emulator.world.too_new_wait = 0.2
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file, token=TOKEN)
    api = App(cfg).api()
    ahead = str(emulator.world.rv + 1000)
    with pytest.raises(ApiTooNew, match="Too large resource version"):
        list(api.watch_pods("node-1", ahead, 5))

    class Feed:
        listed: list[int] = []

        def replace(self, items: Any) -> None:
            self.listed.append(len(list(items)))

        def opened(self) -> None:
            pass

        def heard(self) -> None:
            pass

        def apply(self, event: Any) -> None:
            pass

        def stale(self, why: ApiError, verb: str = "list") -> None:
            raise AssertionError(f"not an outage: {why}")

        def live(self) -> None:
            pass

    sleeps: list[float] = []
    r = Reflector("pods", lambda: api.list_pods("node-1"),
                  lambda rv: api.watch_pods("node-1", rv, 1), Feed(), Backoff(1.0, 30.0, 0.0),
                  sleep=sleeps.append)
    r.rv = ahead
    r.step()
    assert r.rv is None  # the next step lists
    r.step()
    assert Feed.listed == [1] and r.rv == str(emulator.world.rv)


def test_pods_of_other_nodes_are_neither_listed_nor_watched(emulator: ApiEmulator) -> None:
    from kubemeta.wire.watchproto import WatchDecoder

    emulator.world.apply(make_pod("shop", "here", {"v": "1"}))
    emulator.world.apply(make_pod("shop", "there", {"v": "1"}, node="node-2"))
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file, token=TOKEN)
    api = App(cfg).api()
    listing = api.list_pods("node-1")
    assert [o["metadata"]["name"] for o in listing] == ["here"]
    assert listing.resource_version is not None
    emulator.world.apply(make_pod("shop", "there", {"v": "2"}, node="node-2"))
    emulator.world.apply(make_pod("shop", "here", {"v": "2"}))
    decoder = WatchDecoder(1 << 20)
    events = [ev for data in api.watch_pods("node-1", listing.resource_version, 1)
              for ev in decoder.feed(data) if ev.type != "BOOKMARK"]
    assert [(ev.type, ev.obj["metadata"]["name"]) for ev in events] == [("MODIFIED", "here")]


def test_an_error_answer_that_never_ends_is_read_no_further_than_its_limit(
        api: ApiFetcher, emulator: ApiEmulator) -> None:
    emulator.add_fault(Fault("endless_error", times=1))
    with pytest.raises(ApiServerError, match="500"):
        api.pod("shop", "web-1")
    assert api.pod("shop", "web-1").labels == {"app": "web"}  # and it goes on


@pytest.mark.parametrize("read", ["get", "list"])
def test_an_answer_that_never_ends_is_cut_at_the_limit(emulator: ApiEmulator, read: str) -> None:
    emulator.add_fault(Fault("endless"))
    cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file, token=TOKEN,
                        api_read_timeout=30.0)
    api = App(cfg).api()
    limit = kubeapi.MAX_BODY_BYTES if read == "get" else kubeapi.MAX_LIST_BYTES
    with pytest.raises(ApiBadResponse, match=f"larger than {limit} bytes"):
        if read == "get":
            api.get_pod("shop", "web-1")
        else:
            list(api.list_pods("node-1"))


def test_gets_share_one_connection(api: ApiFetcher, emulator: ApiEmulator) -> None:
    # A connection per GET would cost the API server a TLS handshake per lookup.
    for _ in range(5):
        assert api.pod("shop", "web-1").labels == {"app": "web"}
        with pytest.raises(ApiNotFound):
            api.pod("shop", "ghost")
    assert emulator.world.connections == 1


def test_a_kept_alive_connection_closed_under_a_request_is_sent_again_once(
        api: ApiFetcher, emulator: ApiEmulator) -> None:
    assert api.pod("shop", "web-1").labels == {"app": "web"}  # the connection is in the pool
    emulator.add_fault(Fault("close", times=1))
    assert api.pod("shop", "web-1").labels == {"app": "web"}
    assert emulator.world.by_kind["fault_close"] == 1
    emulator.add_fault(Fault("close"))  # every time: once more, on a new connection, no more
    with pytest.raises(ApiUnreachable):
        api.pod("shop", "web-1")
    assert emulator.world.by_kind["fault_close"] == 3


def test_a_new_connection_closed_without_an_answer_is_not_sent_again(
        api: ApiFetcher, emulator: ApiEmulator) -> None:
    emulator.add_fault(Fault("close", times=1))
    with pytest.raises(ApiUnreachable):
        api.pod("shop", "web-1")
    assert emulator.world.by_kind["fault_close"] == 1
    assert api.pod("shop", "web-1").labels == {"app": "web"}
