"""The per-line logic of both modes, with a real store over a counting fake source."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubemeta import config, jsonlib
from kubemeta.cache.policy import Backoff
from kubemeta.clock import SYSTEM
from kubemeta.model.identify import Identifier
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.shell.enricher import Enricher
from kubemeta.wire.framing import OVERSIZE
from kubemeta.wire.record import RecordReader

from fakes import FakeFetcher, make_store

CID = "a" * 64
FILE = f"/var/log/containers/web-1_shop_app-{CID}.log"
T = "2026-11-21T10:00:00.000000001Z"
POD = PodMeta("uid-1", {"app": "web"}, None, "node-1")
NS = NamespaceMeta("ns-uid", {"team": "a"}, None, "2026-01-01T00:00:00Z")


def enricher(offset: bool = False, **kw: Any) -> tuple[Enricher, FakeFetcher]:
    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    store = make_store(src, SYSTEM, workers=1, probe=Backoff(1.0, 30.0, 0.0),
                       max_request_rate=1000, request_burst=1000)
    reader = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL",
                          offset=offset)
    ident = Identifier(config.DEFAULT_FILENAME_PATTERNS, config.DEFAULT_CONTAINER_NAME_PATTERNS)
    return Enricher(reader, ident, store, "https://api:6443", 10.0, **kw), src


def line(msg: str, tree: dict[str, Any] | None = None, filename: str = FILE) -> bytes:
    t: dict[str, Any] = {"metadata": {"filename": filename, "fileoffset": "7"}}
    t.update(tree or {})
    return json.dumps({"msg": msg, "rawmsg": msg, "uuid": None, "$!": t}).encode()


def test_docker_record_gets_both_objects_only() -> None:
    e, _ = enricher()
    out = json.loads(e.reply(line('{"log":"hi\\n"}', {"log": "hi\n", "stream": "stdout"})))
    assert list(out["$!"]) == ["kubernetes", "docker"]
    assert out["$!"]["kubernetes"]["labels"] == {"app": "web"}
    assert out["$!"]["docker"] == {"container_id": CID}


def test_cri_record_is_unframed_like_docker() -> None:
    e, _ = enricher()
    msg = f"{T} stderr P {'x' * 20000}\n{T} stderr F end"
    out = json.loads(e.reply(line(msg)))["$!"]
    assert out["log"] == "x" * 20000 + "end\n"
    assert (out["stream"], out["time"]) == ("stderr", T)
    assert out["kubernetes"]["pod_name"] == "web-1"
    assert e.counters.linescri == 1


def test_cri_off_leaves_the_message_alone() -> None:
    e, _ = enricher(parse_cri=False)
    out = json.loads(e.reply(line(f"{T} stdout F text")))["$!"]
    assert "log" not in out and "kubernetes" in out


def test_cri_is_parsed_even_when_no_pod_is_named() -> None:
    e, src = enricher()
    out = json.loads(e.reply(line(f"{T} stdout F text", filename="/var/log/other.log")))
    assert out == {"$!": {"log": "text\n", "stream": "stdout", "time": T}}
    assert src.calls == []


def test_merge_log_for_both_runtimes() -> None:
    e, _ = enricher(merge_log_key="app_json")
    docker = json.loads(e.reply(line("raw", {"log": '{"level":"warn"}\n'})))["$!"]
    assert docker["app_json"] == {"level": "warn"}
    cri = json.loads(e.reply(line(f'{T} stdout F {{"level":"info","n":[1]}}')))["$!"]
    assert cri["app_json"] == {"level": "info", "n": [1]}
    text = json.loads(e.reply(line(f"{T} stdout F {{not json")))["$!"]
    assert "app_json" not in text and text["log"] == "{not json\n"


def test_metadata_is_serialized_once_per_container() -> None:
    e, src = enricher()
    first = e.reply(line("a", {"log": "a\n"}))
    again = e.reply(line("b", {"log": "b\n"}))
    assert first == again and len(src.calls) == 2  # one pod and one namespace request


@pytest.mark.parametrize("bad", [b"not json", b"[1]", OVERSIZE])
def test_bad_records_get_empty_replies(bad: Any) -> None:
    e, _ = enricher()
    assert e.reply(bad) == b"{}\n"


def test_enriched_line_is_the_whole_tree_with_our_members() -> None:
    e, _ = enricher()
    raw = e.enriched(line(f"{T} stdout F text", {"own": {"k": "v"}, "log": None}))
    assert raw is not None and raw.endswith(b"\n") and raw.count(b"\n") == 1
    tree = json.loads(raw)
    assert tree["own"] == {"k": "v"} and tree["metadata"]["fileoffset"] == "7"
    assert tree["log"] == "text\n" and tree["kubernetes"]["namespace_name"] == "shop"
    assert "msg" not in tree


def test_enriched_line_keeps_the_message_when_there_is_no_log_text() -> None:
    e, _ = enricher()
    raw = e.enriched(json.dumps({"msg": "plain syslog", "$!": None}).encode())
    assert raw is not None and json.loads(raw) == {"msg": "plain syslog"}
    docker = e.enriched(line("raw json", {"log": "hi\n"}))
    assert docker is not None and "msg" not in json.loads(docker)


def test_enriched_passes_unreadable_lines_on_and_drops_only_oversize() -> None:
    e, _ = enricher()
    assert e.enriched(b"not json") == b"not json\n"
    assert e.enriched(OVERSIZE) is None


@pytest.mark.parametrize("codec", [jsonlib.STDLIB, jsonlib.ORJSON], ids=["json", "orjson"])
@pytest.mark.parametrize("app", ['{"latency": NaN}', '{"latency": Infinity}',
                                 '{"latency": 1e999}', '{"name": "\\ud800"}'],
                         ids=["nan", "infinity", "overflow", "lone-surrogate"])
def test_an_application_line_that_is_not_json_is_not_merged_and_the_reply_stays_json(
        codec: jsonlib.Codec | None, app: str) -> None:
    if codec is None:
        pytest.skip("orjson is not installed here")
    e, _ = enricher(merge_log_key="app_json", loads=codec.loads, dumps=codec.dumps)
    reply = e.reply(line("raw", {"log": app + "\n"}))
    out = json.loads(reply, parse_constant=lambda c: pytest.fail(f"{c} in a reply"))
    assert "app_json" not in out["$!"] and out["$!"]["kubernetes"]["pod_name"] == "web-1"


def test_a_merged_object_that_cannot_be_written_is_left_out_alone() -> None:
    def dumps(obj: Any) -> bytes:
        if isinstance(obj, dict) and "bad" in obj:
            raise ValueError("cannot write it")
        return jsonlib.dumps(obj)

    e, _ = enricher(merge_log_key="app_json", dumps=dumps, loads=jsonlib.loads)
    out = json.loads(e.reply(line("raw", {"log": '{"bad": 1}\n'})))["$!"]
    assert "app_json" not in out and out["kubernetes"]["pod_name"] == "web-1"


def test_a_reply_names_its_record_when_asked() -> None:
    e, _ = enricher(offset=True, name_records=True)
    for _ in range(2):  # the memoised reply too
        out = json.loads(e.reply(line("x", {"log": "hi\n"})))["$!"]
        assert out["kubemeta_of"] == {"file": FILE, "offset": "7"}
        assert out["kubernetes"]["labels"] == {"app": "web"}
    other = json.loads(e.reply(line("plain", filename="/var/log/other.log")))["$!"]
    assert other == {"kubemeta_of": {"file": "/var/log/other.log", "offset": "7"}}
    cri = json.loads(e.reply(line(f"{T} stdout F text")))["$!"]
    assert cri["log"] == "text\n" and cri["kubemeta_of"]["offset"] == "7"
    # A record without imfile's metadata (journald, say) is answered as before.
    bare = json.dumps({"msg": "m", "$!": {"CONTAINER_NAME": "k8s_app_web-1_shop_uid_0"}})
    assert b"kubemeta_of" not in e.reply(bare.encode())
    # Never by default: a site's own output would carry the extra member.
    plain, _ = enricher()
    assert b"kubemeta_of" not in plain.reply(line("x", {"log": "hi\n"}))


@pytest.mark.parametrize("offset, want", [("12", "12"), (12, "12"), (True, None),
                                          ({"x": 1}, None), (None, None)])
def test_an_odd_offset_never_costs_the_record(offset: Any, want: str | None) -> None:
    reader = RecordReader("$!metadata!filename", "$!a", "$!b", offset=True)
    src = reader.read(json.dumps({"$!": {"metadata": {"filename": FILE,
                                                       "fileoffset": offset}}}).encode())
    assert src.filename == FILE and src.offset == want


def test_once_hurried_no_line_waits_for_the_api() -> None:
    """rsyslog gave up on a reply: it is shutting down, and a worker still busy
    after a second is cancelled with its batch. The lines left are answered from
    what is known, at once."""
    import threading

    src = FakeFetcher({("shop", "web-1"): POD}, {"shop": NS})
    src.gate = threading.Event()  # the API answers only when the test says so
    store = make_store(src, SYSTEM, workers=1, probe=Backoff(1.0, 30.0, 0.0),
                       max_request_rate=1000, request_burst=1000)
    reader = RecordReader("$!metadata!filename", "$!CONTAINER_NAME", "$!CONTAINER_ID_FULL")
    ident = Identifier(config.DEFAULT_FILENAME_PATTERNS, config.DEFAULT_CONTAINER_NAME_PATTERNS)
    e = Enricher(reader, ident, store, "https://api:6443", 3600.0)  # would wait an hour
    e.hurry()
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(e.reply(line('{"log":"x"}', {"log": "x\n"}))))
    t.start()
    t.join(30)
    alive = t.is_alive()
    src.gate.set()
    t.join(30)
    assert not alive, "the line waited for the API"
    out = json.loads(got[0])["$!"]["kubernetes"]
    assert out["pod_name"] == "web-1" and "labels" not in out  # file-name fields
