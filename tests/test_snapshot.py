"""The warm-start snapshot: its format, its refusals, and the keeper that loads
and writes it around a real store."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from kubemeta import app
from kubemeta.cache.store import MetadataStore
from kubemeta.config import Config
from kubemeta.model.identify import PodRef
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.state import snapshot
from kubemeta.state.snapshot import Contents, SnapshotError
from kubemeta.state.warmstart import SnapshotKeeper, SnapshotSettings

from fakes import FakeClock, FakeFetcher, make_store

POD = PodMeta("uid-1", {"app": "web"}, {"a": "b"}, "node-1", ("cid-1",))
GONE = PodMeta("uid-0", {"app": "job"}, None, "node-1", ("cid-0",))
NS = NamespaceMeta("ns-uid", {"team": "a"}, None, "2026-01-01T00:00:00Z")
IDENT = snapshot.identity("https://api:6443", "node-1", True, "_", ())
CONTENTS = Contents([(("shop", "web-1"), POD)], [("shop", NS)], [(GONE, 30.0)])


def test_round_trip() -> None:
    data = snapshot.encode(CONTENTS, IDENT, 1700000000.0)
    assert snapshot.decode(data, IDENT) == (CONTENTS, 1700000000.0)


@pytest.mark.parametrize("other", [
    snapshot.identity("https://other:6443", "node-1", True, "_", ()),
    snapshot.identity("https://api:6443", "node-2", True, "_", ()),
    snapshot.identity("https://api:6443", "node-1", False, "_", ()),   # labels shaped otherwise
    snapshot.identity("https://api:6443", "node-1", True, "_", ("team",)),
])
def test_a_foreign_snapshot_is_refused(other: dict[str, object]) -> None:
    with pytest.raises(SnapshotError, match="made for another setup"):
        snapshot.decode(snapshot.encode(CONTENTS, other, 1.0), IDENT)


@pytest.mark.parametrize(("data", "why"), [
    (b"\x00\xff garbage", "not JSON"),
    (b"[]", "not a kubemeta snapshot"),
    (b'{"format": "kubemeta-snapshot", "version": 99}', "version 99"),
    (b'{"format": "kubemeta-snapshot", "version": 1, "for": null}', "another setup"),
])
def test_corrupt_snapshots_raise_one_error(data: bytes, why: str) -> None:
    with pytest.raises(SnapshotError, match=why):
        snapshot.decode(data, IDENT)


@pytest.mark.parametrize("damage", [
    lambda d: d.update(pods="nope"),
    lambda d: d["pods"][0].update(labels={"k": 5}),
    lambda d: d["pods"][0].pop("ns"),
    lambda d: d["pods"][0].update(cids="cid"),
    lambda d: d["deleted"][0].update(age="old"),
    lambda d: d.update(written_at="yesterday"),
])
def test_malformed_entries_are_refused(damage: object) -> None:

    doc = json.loads(snapshot.encode(CONTENTS, IDENT, 1.0))
    damage(doc)  # type: ignore[operator]
    with pytest.raises(SnapshotError):
        snapshot.decode(json.dumps(doc).encode(), IDENT)


def test_write_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    snapshot.write(str(path), b"one")
    snapshot.write(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.json"]  # no temporary left


def test_an_oversized_snapshot_is_not_written_and_the_old_one_stays(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    snapshot.write(str(path), b"old")
    piece = b"x" * (1 << 20)
    with pytest.raises(SnapshotError, match="larger than"):
        snapshot.write(str(path), (piece for _ in range(snapshot.MAX_BYTES // len(piece) + 1)))
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.json"]


def test_encoded_in_pieces_it_is_one_json_document() -> None:
    many = Contents([(("shop", f"web-{i}"), POD) for i in range(50)], [], [])
    chunks = list(snapshot.encode_chunks(many, IDENT, 1.0))
    assert len(chunks) > 50
    assert len(json.loads(b"".join(chunks))["pods"]) == 50
    assert snapshot.decode(b"".join(chunks), IDENT)[0] == many
    empty = Contents([], [], [])
    assert snapshot.decode(snapshot.encode(empty, IDENT, 1.0), IDENT)[0] == empty


def test_an_oversized_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    with open(path, "wb") as f:
        f.truncate(snapshot.MAX_BYTES + 10)
    path.chmod(0o640)  # as kubemeta writes it: one others may write is not read at all
    with pytest.raises(SnapshotError, match="larger than"):
        snapshot.read(str(path))


def store(clock: FakeClock) -> MetadataStore:
    return make_store(FakeFetcher({}, {}), clock)


def config(tmp_path: Path) -> SnapshotSettings:
    """What app.py hands the keeper for such a config."""
    cfg = Config(kubernetes_url="https://api:6443", node_name="node-1",
                 state_dir=str(tmp_path), source="get")
    return SnapshotSettings(str(tmp_path / snapshot.FILENAME), app.identity(cfg),
                            cfg.snapshot_interval)


def test_keeper_carries_what_one_helper_knew_to_the_next(tmp_path: Path) -> None:
    clock = FakeClock()
    first = store(clock)
    first.put_watched("pod", ("shop", "web-1"), POD)
    first.put_watched("ns", "shop", NS)
    first.put_watched("pod", ("shop", "job-1"), GONE)
    first.forget_watched("pod", ("shop", "job-1"))
    keeper = SnapshotKeeper(first, config(tmp_path), clock=clock)
    assert keeper.save()
    assert not keeper.save()  # nothing changed: nothing written

    second = store(clock)
    assert SnapshotKeeper(second, config(tmp_path), clock=clock).load() == 1
    # The API is not asked: the first line is answered from the snapshot at once.
    pe, ne = second.lookup(PodRef("shop", "web-1", "app", "cid-1", None), clock(), clock())
    assert pe is not None and pe.value == POD and pe.fresh_until > clock()
    assert ne is not None and ne.value == NS
    gone, _ = second.lookup(PodRef("shop", "job-1", "app", "cid-0", None), clock(), clock())
    assert gone is not None and gone.value == GONE


def test_keeper_ignores_a_foreign_snapshot_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    (tmp_path / snapshot.FILENAME).write_bytes(
        snapshot.encode(CONTENTS, snapshot.identity("https://else", "n", True, "_", ()), 1.0))
    (tmp_path / snapshot.FILENAME).chmod(0o640)
    with caplog.at_level(logging.INFO, logger="kubemeta.state.snapshot"):
        assert SnapshotKeeper(store(clock), config(tmp_path), clock=clock).load() == 0
    assert "ignoring the snapshot" in caplog.text and "made for another setup" in caplog.text


def test_keeper_that_cannot_write_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    s = store(clock)
    keeper = SnapshotKeeper(s, config(tmp_path / "missing"), clock=clock)
    with caplog.at_level(logging.WARNING, logger="kubemeta.state.snapshot"):
        for i in range(3):
            s.put_watched("pod", ("shop", f"web-{i}"), POD)
            assert not keeper.save()
    assert caplog.text.count("cannot write the snapshot") == 1
    (tmp_path / "missing").mkdir()
    assert keeper.save()


def test_extra_fields_survive_a_round_trip() -> None:
    rich = PodMeta("uid-2", {"app": "db"}, None, "node-1", ("c2",),
                   (("pod_ip", "10.0.0.2"), ("statefulset", "db")),
                   {"app": ("img:1", "img@sha256:ab"), "init": ("init:1", None)})
    contents = Contents([(("shop", "db-0"), rich)], [], [])
    ident = snapshot.identity("u", None, True, "_", (), ("owner", "pod_ip"))
    assert snapshot.decode(snapshot.encode(contents, ident, 1.0), ident)[0] == contents
    # asking for other fields makes an old snapshot foreign: it lacks them
    with pytest.raises(SnapshotError, match="another setup"):
        snapshot.decode(snapshot.encode(contents, ident, 1.0),
                        snapshot.identity("u", None, True, "_", (), ("owner",)))
