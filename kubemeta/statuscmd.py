"""``kubemeta status``: the node's health, as its leading helper (or table
mode's daemon) sees it, asked over the group's socket in state_dir.

Exit codes, for a monitoring check: 0 healthy, 1 degraded (the report says
why), 2 the config cannot be loaded, 3 unknown: no leader answered (no helper
runs for this config yet: rsyslog starts them with the first record).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from kubemeta import configfile
from kubemeta.errors import ConfigError, KubemetaError
from kubemeta.share.transport import new_socket, receive, socket_address
from kubemeta.wire.sharedproto import Request, decode_answer, encode_request

HEALTHY, DEGRADED, CONFIG, UNKNOWN = 0, 1, 2, 3


def run(path: str | None, overrides: Mapping[str, Any], *, as_json: bool = False,
        timeout: float = 5.0) -> int:
    from kubemeta.app import App

    if path is None and os.path.exists(configfile.DEFAULT_PATH):
        path = configfile.DEFAULT_PATH
    try:
        cfg = configfile.load(path, overrides)
    except ConfigError as e:
        print(f"kubemeta status: configuration error: {e}")
        return CONFIG
    if not cfg.share_helpers:
        print("UNKNOWN share_helpers is off: each helper works alone, and none answers "
              "for the node")
        return UNKNOWN
    group = App(cfg).group()
    try:
        report = ask(group.address, timeout)
    except KubemetaError as e:
        print(f"UNKNOWN no kubemeta helper answered at {group.address}: {e}")
        return UNKNOWN
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(describe(report), end="")
    return DEGRADED if report.get("problems") else HEALTHY


def ask(address: str, timeout: float) -> dict[str, Any]:
    """The leader's report; KubemetaError when none comes."""
    with new_socket() as sock:
        sock.bind("")  # an automatic abstract address, for the answer
        sock.settimeout(timeout)
        try:
            sock.sendto(encode_request(Request(1, "status")), socket_address(address))
            while True:
                got = receive(sock)  # only a process of this user is believed
                if got is not None:
                    answer = decode_answer(got[0])
                    if answer.id == 1:
                        break
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise KubemetaError("none is running for this config (rsyslog starts helpers "
                                "with the first record; table mode's daemon at once)") from e
        except TimeoutError as e:
            raise KubemetaError(f"no answer within {timeout:g} s") from e
        except OSError as e:
            raise KubemetaError(e.strerror or str(e)) from e
    if answer.status != "ok" or answer.meta is None:
        raise KubemetaError(answer.reason or answer.status)
    return answer.meta


def describe(r: Mapping[str, Any]) -> str:
    """The report for a person, worst news first."""
    problems = r.get("problems") or []
    lines = [f"{'DEGRADED' if problems else 'OK'} kubemeta {r['leader']['version']}"]
    lines += [f"  problem: {p}" for p in problems]
    lines.append(f"leader: pid {r['leader']['pid']}, up {r['leader']['seconds_up']:.0f} s; "
                 f"followers: {', '.join(map(str, r['followers'])) or 'none'}")
    for resource, w in sorted(r.get("watches", {}).items()):
        heard = w["seconds_since_heard"]
        lines.append(f"watch {resource}: {'up' if w['up'] else 'FAILING'}, last heard "
                     f"{'never' if heard is None else f'{heard:.0f} s ago'}"
                     + (f"; last error: {w['last_error']}" if w.get("last_error") else ""))
    c = r["cache"]
    age = c["snapshot_age_seconds"]
    lines.append(f"cache: {c['pods']} pods, {c['namespaces']} namespaces; snapshot "
                 f"{'none' if age is None else f'{age:.0f} s old'}")
    a = r["api"]
    since = a["seconds_since_success"]
    probe = a.get("next_probe_in_seconds")
    lines.append(f"API: breaker {a['breaker']}"
                 + (f" after {a['consecutive_failures']} failures, next probe in {probe:.0f} s"
                    if probe is not None else "")
                 + ", last answer "
                 f"{'never' if since is None else f'{since:.0f} s ago'}, "
                 f"{a['lookups_pending']} lookups pending"
                 + (f"; last error: {a['last_error']}" if a.get("last_error") else ""))
    requests = a["requests_last_minute"]
    lines.append("API requests in the last minute: "
                 + (", ".join(f"{n} x {k.replace('.', ' ')}" for k, n in requests.items())
                    or "none"))
    lines += [f"config problem: {p}" for p in r.get("config_problems", [])]
    if r.get("internal_errors"):
        lines.append(f"internal errors: {r['internal_errors']} (see the log's CRITICAL lines)")
    return "\n".join(lines) + "\n"
