"""``kubemeta enrich``: records replayed through the enricher, for debugging.

Input is rsyslog's fulljson lines, or with ``--raw FILE_NAME`` the lines of a
container log file (docker json-file or CRI) as that file held them; they are
wrapped as imfile and mmjsonparse would hand them over. Output is one reply per
line (with ``--raw``, the record's ``$!`` after the reply is merged, as the
shipped outputs write it). ``--explain`` says on stderr, line by line, which
pod the record named and where its metadata came from, read from the counters
that line moved. Errors are one clean line and exit 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

from kubemeta import configfile, jsonlib
from kubemeta.errors import ConfigError, RecordError
from kubemeta.model.identify import PodRef


def run(path: str | None, overrides: Mapping[str, Any], source: str, *,
        raw: str | None = None, explain: bool = False, deadline_given: bool = False) -> int:
    from kubemeta.app import App
    from kubemeta.model.identify import Identifier
    from kubemeta.shell import logsink
    from kubemeta.wire.framing import LineFramer
    from kubemeta.wire.record import RecordReader

    try:
        cfg = configfile.load(path, overrides)
    except ConfigError as e:
        print(f"kubemeta enrich: configuration error: {e}", file=sys.stderr)
        return 2
    try:
        src: IO[bytes] = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as e:
        print(f"kubemeta enrich: cannot read {source}: {e.strerror or e}", file=sys.stderr)
        return 2
    logsink.setup(None, cfg.log_level, helper=False, journal=False)
    logsink.to_stderr(cfg.log_level)
    app = App(cfg)
    store = app.start_store(app.store())
    # Replay is not latency-bound: wait for the API as long as a request may take.
    deadline = None if deadline_given else cfg.api_connect_timeout + cfg.api_read_timeout
    enricher = app.enricher(store, deadline)
    reader = RecordReader(cfg.filename_path, cfg.container_name_path, cfg.container_id_path)
    identifier = Identifier(cfg.filename_patterns, cfg.container_name_patterns)
    framer = LineFramer(cfg.max_line_bytes)
    out = sys.stdout.buffer
    offset = 0
    with src:
        for n, frame in enumerate(_frames(src, framer), 1):
            record = raw_record(frame, raw, cfg.filename_path, offset) if raw else frame
            offset += len(frame) + 1
            before = dict(vars(store.counters))
            reply = enricher.reply(record)
            tree = merged(record, reply)
            out.write(jsonlib.dumps(tree) + b"\n" if raw else reply)
            if explain:
                try:
                    ref = identifier.identify(reader.read(record))
                except RecordError:
                    ref = None
                k8s = tree.get("kubernetes")
                enriched = isinstance(k8s, dict) and "pod_id" in k8s
                said = explanation(ref, before, vars(store.counters), store.last_error, enriched)
                print(f"kubemeta: line {n}: {said}", file=sys.stderr, flush=True)
    out.flush()
    return 0


def _frames(src: IO[bytes], framer: Any) -> Iterable[bytes]:
    for chunk in iter(lambda: src.read(1 << 16), b""):
        yield from framer.feed(chunk)
    if framer.pending():
        yield from framer.feed(b"\n")


def raw_record(line: bytes, filename: str, filename_path: str, offset: int) -> bytes:
    """A container log line as rsyslog hands it to the helper: imfile's message
    and metadata, and (for a docker json-file line) mmjsonparse's fields."""
    tree: dict[str, Any] = {}
    text = line.decode("utf-8", "replace")
    try:
        parsed = jsonlib.loads(line)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        tree.update(parsed)
    where = tree
    keys = filename_path.removeprefix("$!").split("!")
    for key in keys[:-1]:
        where = where.setdefault(key, {})
    where[keys[-1]] = filename
    tree.setdefault("metadata", {}).setdefault("fileoffset", str(offset))
    return jsonlib.dumps({"msg": text, "$!": tree})


def merged(record: bytes, reply: bytes) -> dict[str, Any]:
    """The record's ``$!`` with the reply's merged in, as rsyslog does ({} for a
    record that is not JSON)."""
    try:
        original = jsonlib.loads(record)
        answer = jsonlib.loads(reply)
    except (ValueError, RecursionError):
        return {}
    tree = dict(original.get("$!") or {}) if isinstance(original, dict) else {}
    if isinstance(answer, dict) and isinstance(answer.get("$!"), dict):
        tree.update(answer["$!"])
    return tree


def explanation(ref: PodRef | None, before: Mapping[str, Any], after: Mapping[str, Any],
                last_error: str | None, enriched: bool) -> str:
    """Why a record got what it got, from the counters its line moved and whether
    its reply carries the pod's metadata (``enriched``)."""
    moved = {k for k, v in after.items()
             if isinstance(v, int) and v != before.get(k)}
    if ref is None:
        return ("no pod named: the file name matches none of filename_patterns (nor a "
                "CONTAINER_NAME container_name_patterns): the record is passed on as it is")
    pod = f"pod {ref.namespace}/{ref.pod}, container {ref.container}"
    if not enriched:
        if "podmetadatanotfound" in moved:
            why = "the API says it does not exist"
        elif "linesfilenameonly" not in moved:
            why = "the API said it does not exist (remembered for not_found_ttl)"
        elif moved & {"podmetadataerror", "podmetadatabusy"} or last_error:
            why = f"the API failed ({last_error or 'no answer'})"
        else:
            why = "not known in time (lookup_deadline)"
        return f"{pod}: file-name fields only: {why}"
    if "linesdeletedpod" in moved:
        return f"{pod}: the metadata of the pod since deleted (its lines are still read)"
    if "linesstale" in moved:
        return f"{pod}: metadata past its TTL, the API could not refresh it"
    if "podmetadatasuccess" in moved:
        return f"{pod}: metadata asked of the API for this line"
    return f"{pod}: metadata from the cache"
