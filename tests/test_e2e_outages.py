"""Through a real rsyslogd with the shipped config, while the API misbehaves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apiemulator import ApiEmulator

import outage
from conftest import TOKEN

FAULTS = {
    "refused": [("refused", 6)],
    "forbidden-403": [("forbidden", 6)],
    "hang": [("hang", 6)],
    "reset": [("reset", 5)],
    "cut-mid-answer": [("truncated", 5)],
    "slow": [("slow", 5)],
    "throttled-429": [("throttled", 5)],
    "unavailable-503": [("unavailable", 5)],
    "server-error-500": [("server_error", 5)],
    "tls-handshake": [("tls", 5)],
    "garbage": [("garbage", 5)],
}


@pytest.mark.parametrize("timeline", FAULTS.values(), ids=FAULTS.keys())
def test_rides_through(tmp_path: Path, emulator: ApiEmulator, token_file: Path,
                       timeline: list[tuple[str, float]]) -> None:
    res = outage.run(tmp_path, emulator, token_file, timeline)
    outage.check(res)
    if timeline[0][0] not in ("slow", "garbage"):
        assert res.log.count("Kubernetes API unavailable") == 1, res.log
        assert res.log.count("Kubernetes API recovered after") == 1, res.log


@pytest.mark.parametrize("timeline", [FAULTS["refused"], FAULTS["forbidden-403"], FAULTS["hang"]],
                         ids=["refused", "forbidden-403", "hang"])
def test_table_mode_rides_through(tmp_path: Path, emulator: ApiEmulator, token_file: Path,
                                  timeline: list[tuple[str, float]]) -> None:
    """Known pods are table hits throughout; the pod born during the outage is a
    miss (the helper, file-name fields) until the daemon's watch brings it back."""
    res = outage.run(tmp_path, emulator, token_file, timeline, table=True)
    outage.check(res)
    assert "follower of this node's helpers" in res.log, "the helper followed the daemon"


def test_rolling_control_plane_upgrade(tmp_path: Path, emulator: ApiEmulator,
                                       token_file: Path) -> None:
    timeline = [("refused", 3), ("forbidden", 4), ("hang", 3), ("unavailable", 2),
                ("ok", 2), ("refused", 2), ("tls", 2), ("forbidden", 3)]
    res = outage.run(tmp_path, emulator, token_file, timeline)
    outage.check(res)
    assert "Kubernetes API unavailable: 403 Forbidden" in res.log or \
        "Kubernetes API unavailable: connection refused" in res.log
    # The counters saw it: requests by status, lines served stale or file-name only.
    last = res.stats[-1]
    assert last["apirequests.get.403"] >= 1 and last["breakerstate"] == 0
    assert last["linesfilenameonly"] >= 1


def test_api_down_when_kubemeta_starts(tmp_path: Path, emulator: ApiEmulator,
                                       token_file: Path) -> None:
    res = outage.run(tmp_path, emulator, token_file, [("refused", 6)], start_phase="refused")
    outage.check(res, known_labelled_throughout=False)
    for k in outage.KNOWN:
        late = outage.since_labelled(res.records, res.recovered_at, outage.key_of(*k))
        assert late and all(r["kubernetes"]["labels"] for r in late)


def test_token_rotated_while_running(tmp_path: Path, emulator: ApiEmulator,
                                     token_file: Path) -> None:
    def rotate() -> None:
        # The API stops accepting the old token first; the new file lands 2 s later.
        emulator.add_token("rotated-token", "system:serviceaccount:kube-system:kubemeta")
        with emulator.world.lock:
            del emulator.world.tokens[TOKEN]
        time.sleep(2)
        token_file.write_text("rotated-token\n")

    res = outage.run(tmp_path, emulator, token_file, [("ok", 4)], during=rotate)
    outage.check(res)
    assert "401 Unauthorized" in res.log
