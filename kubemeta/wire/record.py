"""What a fulljson line from rsyslog tells us: sans-IO, bytes in, values out.

rsyslog's fulljson line is a JSON object whose "$!" member holds the message
variable tree. We need up to three strings from it to identify the pod (the log
file name and the journald CONTAINER_NAME / CONTAINER_ID_FULL fields), plus the
message text (a CRI record arrives there unparsed), the docker ``log`` field and
the tree itself. Anything that is not a JSON object raises RecordError, the only
error this module raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from kubemeta import jsonlib
from kubemeta.errors import RecordError
from kubemeta.text import clip


class RecordFields(NamedTuple):
    """The raw fields of one record (None when absent).

    The first three identify the pod; ``msg`` is the message text, ``log`` the
    docker json-file text that mmjsonparse put at ``$!log``, ``tree`` the whole
    ``$!`` object (the omprog sink writes it back out).
    """

    filename: str | None
    container_name: str | None
    container_id: str | None
    msg: str | None = None
    log: str | None = None
    tree: dict[str, Any] | None = None
    offset: str | None = None  # imfile's $!metadata!fileoffset, when asked for


def compile_path(path: str) -> tuple[str, ...]:
    """``$!metadata!filename`` -> ("metadata", "filename")."""
    return tuple(p for p in path[2:].split("!") if p)


def _offset(tree: dict[str, Any]) -> str | None:
    """imfile's offset of the record in its file; never a reason to refuse one."""
    md = tree.get("metadata")
    value = md.get("fileoffset") if isinstance(md, dict) else None
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _dig(tree: Any, path: tuple[str, ...], label: str) -> str | None:
    node = tree
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
        if node is None:
            return None
    if isinstance(node, str):
        return node
    raise RecordError(f"{label} is a {type(node).__name__}, not a string")


class RecordReader:
    """Turns one line into RecordFields; configured once with the variable paths."""

    def __init__(self, filename_path: str, container_name_path: str,
                 container_id_path: str, loads: Callable[[bytes], Any] = jsonlib.loads,
                 offset: bool = False) -> None:
        self._fn = compile_path(filename_path)
        self._cn = compile_path(container_name_path)
        self._ci = compile_path(container_id_path)
        self._labels = (filename_path, container_name_path, container_id_path)
        self._loads = loads
        self._offset = offset

    def read(self, line: bytes) -> RecordFields:
        try:
            obj = self._loads(line)
        except RecursionError as e:
            raise RecordError("JSON nested too deeply") from e
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, orjson's error
            raise RecordError(f"not valid JSON: {clip(str(e))}") from e
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        msg = obj.get("msg")
        if not isinstance(msg, str):
            msg = None
        tree = obj.get("$!")
        if tree is None:
            return RecordFields(None, None, None, msg)
        if not isinstance(tree, dict):
            raise RecordError(f"\"$!\" is a {type(tree).__name__}, not an object")
        text = tree.get("log")
        return RecordFields(
            _dig(tree, self._fn, self._labels[0]),
            _dig(tree, self._cn, self._labels[1]),
            _dig(tree, self._ci, self._labels[2]),
            msg,
            text if isinstance(text, str) else None,
            tree,
            _offset(tree) if self._offset else None,
        )


