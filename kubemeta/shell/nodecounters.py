"""The counters of a node's helpers, summed: what the node did, whichever helper
did it, and never less than before.

Each helper of a group writes its own counters, every stats interval and when
it stops, to a file of its own in state_dir, named for its pid and the time
its process started (a pid reused by a later process is another file). The
one that writes the node's figures (the leader) sums every file of the group.
A file whose process is gone is added into the group's ``retired`` file and
removed, under the leader's lock, so a helper's counts outlive it: the sums
never go back, across a helper's exit, a takeover, or an rsyslog restart.

Summing is pure (``add``); the rest is small file I/O with ``files``.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Mapping
from typing import Any

from kubemeta import files, jsonlib

Counts = dict[str, Any]  # counter: int, or status: int for apirequests
MAX_FILE = 64 * 1024


def add(total: Counts, more: Mapping[str, Any]) -> Counts:
    """``total`` plus ``more``, key by key (nested one level, as apirequests);
    values that are not counts are left out."""
    out: Counts = {k: (dict(v) if isinstance(v, dict) else v) for k, v in total.items()}
    for k, v in more.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            out[k] = out.get(k, 0) + v if isinstance(out.get(k, 0), int) else v
        elif isinstance(v, dict):
            inner = out.get(k) if isinstance(out.get(k), dict) else {}
            assert isinstance(inner, dict)
            for s, n in v.items():
                if isinstance(n, int) and not isinstance(n, bool):
                    inner[str(s)] = inner.get(str(s), 0) + n
            out[k] = inner
    return out


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096)
    except OSError:
        return None
    # The command may hold spaces and parentheses: fields count from the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


class NodeCounters:
    def __init__(self, state_dir: str, group: str, pid: int | None = None) -> None:
        self._dir = state_dir
        self._group = group
        self._pid = pid or os.getpid()
        self._own = os.path.join(state_dir,
                                 f"counters-{group}-{self._pid}-{_started(self._pid)}.json")
        self._retired = os.path.join(state_dir, f"counters-{group}-retired.json")
        self.helpers = 1  # this one and the others found alive by the last totals()

    def publish(self, counts: Mapping[str, Any]) -> None:
        """This helper's counters so far (OSError is the caller's to report)."""
        files.replace(self._own, jsonlib.dumps(dict(counts)), 0o600)

    @property
    def path(self) -> str:
        return self._own

    def totals(self, own: Mapping[str, Any]) -> Counts:
        """The group's counters: ``own`` (this helper's, as they are now), every
        other live helper's last, and the retired ones'. Only the leader calls it:
        it also retires the files of helpers that are gone (OSError: the caller's)."""
        total = add({}, own)
        retired = _read(self._retired)
        gone: list[str] = []
        self.helpers = 1
        for path in glob.glob(os.path.join(self._dir, f"counters-{self._group}-*-*.json")):
            if path == self._own:
                continue
            name = os.path.basename(path)[len(f"counters-{self._group}-"):-len(".json")]
            pid_text, _, started = name.partition("-")
            if not pid_text.isdigit():
                continue
            counts = _read(path)
            if _started(int(pid_text)) == started:
                total = add(total, counts)
                self.helpers += 1
            else:
                retired = add(retired, counts)
                gone.append(path)
        if gone:
            # The sum is kept before the files go: a crash between the two counts
            # those helpers twice, never not at all.
            files.replace(self._retired, jsonlib.dumps(retired), 0o600, durable=True)
            for path in gone:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return add(total, retired)


def _read(path: str) -> Counts:
    try:
        with open(path, "rb") as f:
            data = jsonlib.loads(f.read(MAX_FILE))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
