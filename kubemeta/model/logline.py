"""What the application wrote: CRI records unframed, and its own JSON merged.

Sans-IO: strings in, values out. containerd and CRI-O write each line as
``<RFC3339Nano time> <stdout|stderr> <tags> <text>``; a line longer than the
runtime's limit (16 KiB by default) is split into pieces tagged ``P`` (partial),
the last one ``F`` (full). rsyslog's imfile joins the pieces of one line with
real newlines when the shipped ``endmsg.regex`` is used, each piece keeping its
prefix. ``parse_cri`` turns that back into the fields a docker json-file record
has after mmjsonparse, so one downstream template serves both runtimes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from kubemeta import jsonlib

STREAMS = frozenset({"stdout", "stderr"})


class LogLine(NamedTuple):
    """docker json-file's three fields: the text (with its newline), stream, time."""

    log: str
    stream: str
    time: str


def _piece(line: str) -> tuple[str, str, bool, str] | None:
    """One CRI piece -> (time, stream, is_full, text), or None if it is not one."""
    parts = line.split(" ", 3)
    if len(parts) < 3:
        return None
    time, stream, tags = parts[0], parts[1], parts[2]
    if stream not in STREAMS or not time[:1].isdigit() or "T" not in time:
        return None
    # Tags are colon-separated; the first is P or F, later ones are reserved.
    tag = tags.split(":", 1)[0]
    if tag not in ("P", "F"):
        return None
    return time, stream, tag == "F", parts[3] if len(parts) == 4 else ""


def parse_cri(msg: str) -> LogLine | None:
    """A CRI record (one piece or several joined by newlines), or None if it is not CRI.

    The text is the pieces' texts concatenated, plus a newline if the last piece
    is full, as docker writes it. A line that is not a CRI piece after the first
    is kept as text: losing words is worse than keeping a stray prefix.
    """
    if not msg[:1].isdigit():  # cheap: docker and journald records stop here
        return None
    lines = msg.split("\n")
    first = _piece(lines[0])
    if first is None:
        return None
    time, stream, full, text = first
    if len(lines) == 1:
        return LogLine(text + "\n" if full else text, stream, time)
    texts = [text]
    for line in lines[1:]:
        piece = _piece(line)
        if piece is None:
            texts.append("\n" + line)
            full = False
        else:
            texts.append(piece[3])
            full = piece[2]
    joined = "".join(texts)
    return LogLine(joined + "\n" if full else joined, stream, time)


def parse_json_log(text: str,
                   loads: Callable[[bytes], Any] = jsonlib.loads) -> dict[str, Any] | None:
    """The application's line as a JSON object, or None when it is anything else."""
    body = text.strip()
    if len(body) < 2 or body[0] != "{" or body[-1] != "}":
        return None
    try:
        obj = loads(body.encode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None
