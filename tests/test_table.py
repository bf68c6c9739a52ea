"""Table mode's pure table (model.table) and its keeper (shell.tablekeeper) on a
real directory, driven by a fake source and a fake clock."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from kubemeta import jsonlib
from kubemeta.model import table
from kubemeta.shell import tablekeeper
from kubemeta.shell.tablekeeper import TableKeeper, TableSettings

from fakes import FakeClock


def reply(labels: dict[str, str]) -> bytes:
    return (b'{"$!":' + jsonlib.dumps({"kubernetes": {"labels": labels},
                                       "docker": {"container_id": "c"}}) + b"}\n")


def test_the_table_maps_each_file_to_its_reply_members_sorted() -> None:
    built = table.encode([("/l/b.log", reply({"a": "é\n"})), ("/l/a.log", reply({}))],
                         1 << 20, jsonlib.dumps)
    doc = json.loads(built.data)
    assert (doc["version"], doc["nomatch"], doc["type"]) == (1, "", "string")
    assert [e["index"] for e in doc["table"]] == ["/l/a.log", "/l/b.log"]
    assert json.loads(doc["table"][1]["value"]) == {"kubernetes": {"labels": {"a": "é\n"}},
                                                    "docker": {"container_id": "c"}}
    assert (built.entries, built.left_out) == (2, 0)
    assert json.loads(table.EMPTY) == {**doc, "table": []}


def test_a_table_past_its_bound_leaves_containers_to_the_helper() -> None:
    entries = [(f"/l/{i:03}.log", reply({"n": str(i)})) for i in range(100)]
    full = table.encode(entries, 1 << 20, jsonlib.dumps)
    cut = table.encode(entries, len(full.data) // 2, jsonlib.dumps)
    assert len(cut.data) <= len(full.data) // 2
    assert cut.entries + cut.left_out == 100 and 0 < cut.left_out < 100
    assert len(json.loads(cut.data)["table"]) == cut.entries


@pytest.mark.parametrize("bad", [b"{}\n", b'{"$!":{"a":1}}\n{"$!":{}}\n', b'{"$!":{"a":1}}'])
def test_only_a_one_line_reply_becomes_a_value(bad: bytes) -> None:
    with pytest.raises(table.TableError):
        table.value_of(bad)
    built = table.encode([("/l/a.log", bad), ("/l/b.log", reply({}))], 1 << 20, jsonlib.dumps)
    assert (built.entries, built.left_out) == (1, 1), "left out alone"
    assert [e["index"] for e in json.loads(built.data)["table"]] == ["/l/b.log"]


class FakeSource:
    def __init__(self) -> None:
        self.generation = (0, 0.0)
        self.known: dict[str, bytes] = {}

    def reply(self, filename: str) -> bytes | None:
        return self.known.get(os.path.basename(filename))


def keeper(tmp: Path, **kw: Any) -> tuple[TableKeeper, FakeSource, FakeClock]:
    (tmp / "logs").mkdir()
    (tmp / "state").mkdir()
    s = TableSettings(str(tmp / "state" / "t.json"), str(tmp / "state" / "t.reload"),
                      (str(tmp / "logs" / "*.log"),), kw.pop("max_bytes", 1 << 20),
                      kw.pop("min_interval", 0.25))
    source, clock = FakeSource(), FakeClock()
    return TableKeeper(s, source, clock), source, clock  # type: ignore[arg-type]


def entries(tmp: Path) -> dict[str, Any]:
    doc = json.loads((tmp / "state" / "t.json").read_bytes())
    return {os.path.basename(e["index"]): json.loads(e["value"]) for e in doc["table"]}


def test_a_change_writes_the_table_and_asks_for_one_reload(tmp_path: Path) -> None:
    k, src, clock = keeper(tmp_path)
    (tmp_path / "logs" / "a.log").touch()
    src.known["a.log"] = reply({"v": "1"})
    assert k.step()
    assert entries(tmp_path)["a.log"]["kubernetes"]["labels"] == {"v": "1"}
    assert (tmp_path / "state" / "t.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "state" / "t.reload").read_bytes() == b"reload\n"
    clock.advance(1)
    assert not k.step(), "nothing moved: nothing written"
    src.generation = (1, 0)
    clock.advance(1)
    assert not k.step(), "the same bytes: no write, no reload"
    assert (tmp_path / "state" / "t.reload").read_bytes() == b"reload\n"
    (tmp_path / "logs" / "b.log").touch()  # a new container: no entry until it is known
    clock.advance(1)
    assert not k.step()
    src.known["b.log"] = reply({"v": "b"})
    src.generation = (2, 0)
    clock.advance(1)
    assert k.step() and set(entries(tmp_path)) == {"a.log", "b.log"}
    assert (tmp_path / "state" / "t.reload").read_bytes() == b"reload\n" * 2


def test_a_burst_of_changes_costs_a_few_writes(tmp_path: Path) -> None:
    k, src, clock = keeper(tmp_path, min_interval=0.25)
    (tmp_path / "logs" / "a.log").touch()
    for i in range(100):  # a change every 10 ms for a second
        src.known["a.log"] = reply({"v": str(i)})
        src.generation = (i, 0)
        k.step()
        clock.advance(0.01)
    assert 3 <= k.writes <= 5
    clock.advance(0.25)
    k.step()
    assert entries(tmp_path)["a.log"]["kubernetes"]["labels"] == {"v": "99"}, "the last one"


def test_an_unwritable_table_is_said_once_and_tried_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    k, src, clock = keeper(tmp_path)
    (tmp_path / "logs" / "a.log").touch()
    src.known["a.log"] = reply({})
    (tmp_path / "state" / "t.reload").mkdir()  # appending fails
    with caplog.at_level(logging.WARNING, logger="kubemeta"):
        for _ in range(5):
            assert not k.step()
            clock.advance(1)
        (tmp_path / "state" / "t.reload").rmdir()
        assert k.step()
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "cannot write the lookup table" in m]) == 1, said
    assert any("writing the lookup table" in m and "again" in m for m in said)


def test_the_reload_file_stays_small(tmp_path: Path) -> None:
    k, src, _ = keeper(tmp_path)
    (tmp_path / "logs" / "a.log").touch()
    reload = tmp_path / "state" / "t.reload"
    reload.write_bytes(b"reload\n" * (tablekeeper.RELOAD_FILE_MAX // 7 + 1))
    src.known["a.log"] = reply({})
    assert k.step()
    assert reload.read_bytes() == b"reload\n"


def test_a_deleted_pods_file_keeps_its_entry_and_a_new_pod_of_its_name_gets_its_own() -> None:
    from kubemeta import config
    from kubemeta.cache.store import MetadataStore
    from kubemeta.kinds import Kind
    from kubemeta.model.identify import Identifier
    from kubemeta.model.schema import NamespaceMeta, PodMeta
    from kubemeta.shell.tablekeeper import TableSource

    from fakes import store_settings

    old_cid, new_cid = "a" * 64, "b" * 64
    store = MetadataStore(clock=FakeClock(), settings=store_settings())
    store.put_watched(Kind.NS, "shop", NamespaceMeta("ns-uid", {"team": "a"}, None, None))
    store.put_watched(Kind.POD, ("shop", "web-1"),
                      PodMeta("uid-1", {"v": "old"}, None, "node-1", (old_cid,)))
    source = TableSource(Identifier(config.DEFAULT_FILENAME_PATTERNS,
                                    config.DEFAULT_CONTAINER_NAME_PATTERNS),
                         store, None, lambda: False, "https://api")
    old = f"/var/log/containers/web-1_shop_app-{old_cid}.log"
    new = f"/var/log/containers/web-1_shop_app-{new_cid}.log"

    def labels(name: str) -> Any:
        got = source.reply(name)
        return None if got is None else json.loads(table.value_of(got))["kubernetes"]["labels"]

    assert labels(old) == {"v": "old"}
    store.forget_watched(Kind.POD, ("shop", "web-1"))  # deleted; a new pod takes the name
    store.put_watched(Kind.POD, ("shop", "web-1"),
                      PodMeta("uid-2", {"v": "new"}, None, "node-1", (new_cid,)))
    assert labels(old) == {"v": "old"}, "the deleted pod's unread lines keep its metadata"
    assert labels(new) == {"v": "new"}
    assert labels("/var/log/containers/ghost_shop_app-" + "c" * 64 + ".log") is None


def test_a_keeper_that_knows_nothing_yet_keeps_the_last_runs_table(tmp_path: Path) -> None:
    k, src, clock = keeper(tmp_path)
    (tmp_path / "logs" / "a.log").touch()
    last_run = table.encode([(str(tmp_path / "logs" / "a.log"), reply({"v": "1"}))],
                            1 << 20, jsonlib.dumps).data
    (tmp_path / "state" / "t.json").write_bytes(last_run)
    for _ in range(3):  # the watch has not listed yet
        assert not k.step()
        clock.advance(1)
    assert (tmp_path / "state" / "t.json").read_bytes() == last_run
    src.known["a.log"] = reply({"v": "2"})
    assert k.step()
    assert entries(tmp_path)["a.log"]["kubernetes"]["labels"] == {"v": "2"}
    # Once it has written, an empty table is what it knows: pods gone, files kept.
    src.known.clear()
    src.generation = (1, 0)
    clock.advance(1)
    assert k.step() and entries(tmp_path) == {}


def test_a_bug_in_a_tick_is_reported_and_the_next_tick_runs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    k, src, clock = keeper(tmp_path)
    (tmp_path / "logs" / "a.log").touch()

    def broken(filename: str) -> bytes | None:
        raise RuntimeError("a bug")

    src.reply = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="kubemeta"):
        k.tick()
    assert any("a bug" in r.getMessage() for r in caplog.records)
    src.reply = lambda filename: reply({})  # type: ignore[method-assign]
    clock.advance(1)
    k.tick()
    assert k.writes == 1
