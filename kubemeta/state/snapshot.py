"""The warm-start snapshot: the metadata a helper knew, kept in ``state_dir`` so
that a helper started while the API is down enriches known pods from its first
line.

``encode`` and ``decode`` are pure. A snapshot names what it was made for (the
API, the node, the output shaping): one made for anything else is foreign, and
``decode`` refuses it, as it refuses a corrupt one, with SnapshotError and
nothing else. ``write`` replaces the file atomically (0640); ``read`` reads at
most ``MAX_BYTES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubemeta import files, jsonlib
from kubemeta.errors import KubemetaError
from kubemeta.model.codec import ns_doc, ns_meta, pod_doc, pod_meta
from kubemeta.model.schema import NamespaceMeta, PodMeta

FORMAT = "kubemeta-snapshot"
VERSION = 1
MAX_BYTES = 32 * 1024 * 1024
FILENAME = "snapshot.json"


class SnapshotError(KubemetaError):
    """A snapshot that cannot be used: unreadable, corrupt, too large or foreign."""


@dataclass(frozen=True)
class Contents:
    pods: list[tuple[tuple[str, str], PodMeta]]
    namespaces: list[tuple[str, NamespaceMeta]]
    deleted: list[tuple[PodMeta, float]]  # a deleted pod and how long ago, in seconds


def identity(kubernetes_url: str, node_name: str | None, de_dot: bool, separator: str,
             annotation_match: tuple[str, ...], extra_fields: tuple[str, ...] = (),
             log_control: list[Any] | None = None,
             node_label_match: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What a snapshot's metadata depends on: any difference makes it foreign.
    ``log_control``: its settings, when on; ``node_label_match``, with node_labels.
    Each is absent when off, so that older snapshots stay the same."""
    shape: list[Any] = [de_dot, separator, list(annotation_match), sorted(extra_fields)]
    if log_control is not None:
        shape.append(log_control)
    if node_label_match is not None:
        shape.append({"node_label_match": list(node_label_match)})
    return {"kubernetes_url": kubernetes_url, "node_name": node_name, "shape": shape}


def encode(contents: Contents, ident: dict[str, Any], written_at: float) -> bytes:
    return b"".join(encode_chunks(contents, ident, written_at))


def encode_chunks(contents: Contents, ident: dict[str, Any], written_at: float
                  ) -> Iterator[bytes]:
    """The snapshot's bytes, an entry at a time: a node's thousands of pods are
    never all held as one document (nor as a tree) while it is written."""
    dumps = jsonlib.dumps
    head = dumps({"format": FORMAT, "version": VERSION, "for": ident,
                  "written_at": written_at})
    yield head[:-1]
    sections: list[tuple[str, Iterable[dict[str, Any]]]] = [
        ("pods", (pod_doc(meta, key) for key, meta in contents.pods)),
        ("namespaces", (ns_doc(m, name) for name, m in contents.namespaces)),
        ("deleted", ({**pod_doc(meta, None), "age": round(age, 1)}
                     for meta, age in contents.deleted)),
    ]
    for name, entries in sections:
        yield b',"' + name.encode() + b'":['
        sep = b""
        for entry in entries:
            yield sep + dumps(entry)
            sep = b","
        yield b"]"
    yield b"}"


def decode(data: bytes, ident: dict[str, Any]) -> tuple[Contents, float]:
    """The contents, and when they were written (seconds since the epoch)."""
    try:
        doc = jsonlib.loads(data)
    except (ValueError, RecursionError) as e:
        raise SnapshotError("not JSON") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError("not a kubemeta snapshot")
    if doc.get("version") != VERSION:
        raise SnapshotError(f"snapshot version {doc.get('version')!r}, expected {VERSION}")
    if doc.get("for") != ident:
        raise SnapshotError(f"made for another setup ({_describe(doc.get('for'))})")
    written = doc.get("written_at")
    if not isinstance(written, int | float):
        raise SnapshotError("no time of writing")
    try:
        pods = [((p["ns"], p["name"]), pod_meta(p)) for p in _items(doc, "pods")]
        nss = [(n["name"], ns_meta(n))
               for n in _items(doc, "namespaces") if isinstance(n.get("name"), str)]
        deleted = [(pod_meta(p), float(p["age"])) for p in _items(doc, "deleted")]
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotError(f"malformed entry: {e}") from e
    for (ns, name), _ in pods:
        if not isinstance(ns, str) or not isinstance(name, str):
            raise SnapshotError("malformed pod key")
    return Contents(pods, nss, deleted), float(written)


def write(path: str, data: bytes | Iterable[bytes], durable: bool = True) -> None:
    """Replace ``path`` atomically (see files.replace), mode 0640. Raises
    SnapshotError, leaving the old file, if ``data`` exceeds MAX_BYTES.
    ``durable``: on disk before it replaces the old file (a crash keeps one whole)."""
    try:
        files.replace(path, data, 0o640, durable, MAX_BYTES)
    except files.TooLarge as e:
        raise SnapshotError(str(e)) from e


def read(path: str) -> bytes:
    try:
        with open(files.open_private(path), "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SnapshotError(e.strerror or str(e)) from e
    if len(data) > MAX_BYTES:
        raise SnapshotError(f"larger than {MAX_BYTES} bytes")
    return data


def _items(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = doc.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{key} is not a list of objects")
    return items


def _describe(ident: Any) -> str:
    if not isinstance(ident, dict):
        return "unknown"
    return f"API {ident.get('kubernetes_url')}, node {ident.get('node_name')}"
