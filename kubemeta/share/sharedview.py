"""The view a leader shares with its followers: reply parts, looked up in place.

The leader writes its metadata as ready reply parts (see replyparts) with a
hash table over them; a follower maps the file and looks a line's pod up in
it without decoding anything. One copy sits in the page cache however many
helpers read it, and a follower holds no metadata of its own: the memory a
node spends on metadata does not grow with its number of helpers.

``encode`` and ``View`` are pure: they take values and a buffer (bytes or an
mmap). A buffer that is not a whole view raises ViewError when it is opened;
a lookup that runs into nonsense finds nothing rather than raise.

Layout (little-endian): a header; ``slots`` table entries of (crc32 of key,
offset of key record), 0 marking a free one; the bodies; the key records, each
the key's length, its body's offset and the key. Keys: ``p`` ns NUL name (a
pod), ``n`` name (a namespace), ``u`` uid and ``c`` container id (a deleted
pod: all its keys name one body).
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from kubemeta.errors import KubemetaError
from kubemeta.model import codec
from kubemeta.model.replyparts import Dumps, PodParts, ns_part, pod_parts
from kubemeta.model.schema import NamespaceMeta, PodMeta
from kubemeta.state.snapshot import Contents

MAGIC = b"KMVIEW\x01\n"
_HEADER = struct.Struct("<8sIIIQd")    # magic, slots, keys, deleted pods, size, published
_SLOT = struct.Struct("<II")           # key hash, record offset
_KEY = struct.Struct("<HI")            # key length, body offset; the key follows
_POD = struct.Struct("<dIIIII")        # stamp, uid, own, extra, cids, images
_IMAGE = struct.Struct("<HI")          # name, members
_NS = struct.Struct("<dI")             # stamp, members

Buffer = Any  # bytes or an mmap: anything struct and slicing read


class ViewError(KubemetaError):
    """A buffer that is not a whole shared view."""


class ViewSlot:
    """Where a follower keeps the view it serves from: its feed puts a new one
    here, its lines read whatever is here (None: serve from the store)."""

    view: View | None = None


def _pod_key(namespace: str, name: str) -> bytes:
    return b"p" + namespace.encode() + b"\0" + name.encode()


def encode(pods: Iterable[tuple[tuple[str, str], PodMeta, float]],
           namespaces: Iterable[tuple[str, NamespaceMeta, float]],
           deleted: Iterable[tuple[PodMeta, float]], published: float,
           dumps: Dumps) -> bytes:
    """A view of ``pods`` and ``namespaces`` (each with the monotonic time it is
    fresh until) and ``deleted`` pods (each with the monotonic time it was deleted),
    as the leader knew them at ``published`` (monotonic: one clock for the node)."""
    bodies = bytearray()
    keys: dict[bytes, int] = {}  # key -> its body's offset among the bodies
    graves = 0

    def add(names: list[bytes], body: bytes) -> bool:
        names = [k for k in names if k not in keys and len(k) < 0xFFFF]
        for k in names:
            keys[k] = len(bodies)
        if names:
            bodies.extend(body)
        return bool(names)

    # An entry that cannot be encoded (a lone surrogate from the API, a name too
    # long for its length field) is left out: followers ask the leader for it.
    unencodable = (ValueError, TypeError, struct.error)
    for (ns, name), meta, fresh in pods:
        with contextlib.suppress(*unencodable):
            add([_pod_key(ns, name)], _pod_body(meta, fresh, dumps))
    for name, nsmeta, fresh in namespaces:
        with contextlib.suppress(*unencodable):
            members = ns_part(nsmeta, dumps)
            add([b"n" + name.encode()], _NS.pack(fresh, len(members)) + members)
    for meta, deleted_at in deleted:
        with contextlib.suppress(*unencodable):
            if meta.uid and add([b"u" + meta.uid.encode()]
                                + [b"c" + c.encode() for c in meta.container_ids],
                                _pod_body(meta, deleted_at, dumps)):
                graves += 1
    slots = 8
    while slots < 2 * len(keys):
        slots *= 2
    bodies_at = _HEADER.size + slots * _SLOT.size
    table = bytearray(slots * _SLOT.size)
    key_records = bytearray()
    keys_at = bodies_at + len(bodies)
    for key, body in keys.items():
        h = zlib.crc32(key)
        i = h & (slots - 1)
        while _SLOT.unpack_from(table, i * _SLOT.size)[1]:
            i = (i + 1) & (slots - 1)
        _SLOT.pack_into(table, i * _SLOT.size, h, keys_at + len(key_records))
        key_records.extend(_KEY.pack(len(key), bodies_at + body) + key)
    size = keys_at + len(key_records)
    return (_HEADER.pack(MAGIC, slots, len(keys), graves, size, published) + table
            + bodies + key_records)


def _pod_body(meta: PodMeta, stamp: float, dumps: Dumps) -> bytes:
    parts = pod_parts(meta, dumps)
    uid = (meta.uid or "").encode()
    cids = dumps(list(meta.container_ids))
    images = b"".join(_IMAGE.pack(len(n := name.encode()), len(m)) + n + m
                      for name, m in parts.images.items())
    return (_POD.pack(stamp, len(uid), len(parts.own), len(parts.extra), len(cids),
                      len(parts.images))
            + uid + parts.own + parts.extra + cids + images)


class View:
    """A shared view over ``buf``."""

    def __init__(self, buf: Buffer) -> None:
        try:
            magic, slots, keys, deleted, size, published = _HEADER.unpack_from(buf, 0)
        except struct.error as e:
            raise ViewError("too short for a shared view") from e
        if magic != MAGIC:
            raise ViewError("not a kubemeta shared view (or another version of one)")
        if size != len(buf):
            raise ViewError(f"{len(buf)} bytes where the header says {size}: cut short")
        if slots < 8 or slots & (slots - 1) or keys > slots \
                or _HEADER.size + slots * _SLOT.size > size:
            raise ViewError("a malformed table")
        self._buf = buf
        self._mask = slots - 1
        self.keys = keys
        self.published = published  # what was known by then is in the view
        self.has_deleted = deleted > 0  # else no line of a deleted pod looks further

    def _key_records(self) -> Iterable[tuple[bytes, int]]:
        """Every key and its body's offset (a scan: only for ``contents``)."""
        buf = self._buf
        for i in range(self._mask + 1):
            off = _SLOT.unpack_from(buf, _HEADER.size + i * _SLOT.size)[1]
            if off:
                n, body = _KEY.unpack_from(buf, off)
                yield bytes(buf[off + _KEY.size:off + _KEY.size + n]), body

    def _find(self, key: bytes) -> int | None:
        """The offset of ``key``'s body, or None."""
        buf, mask = self._buf, self._mask
        h = zlib.crc32(key)
        i = h & mask
        try:
            for _ in range(mask + 1):
                hh, off = _SLOT.unpack_from(buf, _HEADER.size + i * _SLOT.size)
                if not off:
                    return None
                if hh == h:
                    n, body = _KEY.unpack_from(buf, off)
                    start = off + _KEY.size
                    if n == len(key) and buf[start:start + n] == key:
                        return body  # type: ignore[no-any-return]
                i = (i + 1) & mask
        except struct.error:
            return None
        return None

    def pod(self, namespace: str, name: str) -> tuple[float, PodParts] | None:
        """The pod's parts and the monotonic time they are fresh until."""
        off = self._find(_pod_key(namespace, name))
        return None if off is None else self._pod_at(off)

    def deleted(self, uid: str | None, container_id: str | None
                ) -> tuple[float, PodParts] | None:
        """A deleted pod's parts, by uid or container id, and when it was deleted."""
        off = None
        if uid is not None:
            off = self._find(b"u" + uid.encode())
        if off is None and container_id is not None:
            off = self._find(b"c" + container_id.encode())
        return None if off is None else self._pod_at(off)

    def namespace(self, name: str) -> tuple[float, bytes] | None:
        off = self._find(b"n" + name.encode())
        if off is None:
            return None
        try:
            stamp, n = _NS.unpack_from(self._buf, off)
        except struct.error:
            return None
        start = off + _NS.size
        return stamp, self._buf[start:start + n]

    def _pod_at(self, off: int) -> tuple[float, PodParts] | None:
        buf = self._buf
        try:
            stamp, nu, no, ne, nc, ni = _POD.unpack_from(buf, off)
            p = off + _POD.size
            uid = buf[p:p + nu].decode() if nu else None
            p += nu
            own = buf[p:p + no]
            p += no
            extra = buf[p:p + ne]
            p += ne + nc
            images: dict[str, bytes] = {}
            for _ in range(ni):
                nn, nm = _IMAGE.unpack_from(buf, p)
                p += _IMAGE.size
                images[buf[p:p + nn].decode()] = buf[p + nn:p + nn + nm]
                p += nn + nm
        except (struct.error, UnicodeDecodeError):
            return None
        return stamp, PodParts(uid, own, extra, images)

    def contents(self, now: float, loads: Callable[[bytes], Any]) -> Contents:
        """Everything, decoded (a follower taking the lead seeds its store with
        it). Deleted pods' ages are counted to ``now``. Raises ViewError."""
        pods: list[tuple[tuple[str, str], PodMeta]] = []
        nss: list[tuple[str, NamespaceMeta]] = []
        deleted: list[tuple[PodMeta, float]] = []
        buf = self._buf
        try:
            for key, body in self._key_records():
                kind, rest = key[:1], key[1:].decode()
                if kind == b"n":
                    stamp, m = _NS.unpack_from(buf, body)
                    start = body + _NS.size
                    members = loads(b"{" + buf[start:start + m] + b"}")
                    nss.append((rest, codec.ns_from_members(members)))
                elif kind in (b"p", b"u"):
                    stamp, meta = self._pod_meta(body, loads)
                    if kind == b"p":
                        ns, _, name = rest.partition("\0")
                        pods.append(((ns, name), meta))
                    else:
                        deleted.append((meta, max(0.0, now - stamp)))
        except (struct.error, UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
            raise ViewError(f"a malformed entry ({e})") from e
        return Contents(pods, nss, deleted)

    def _pod_meta(self, off: int, loads: Callable[[bytes], Any]) -> tuple[float, PodMeta]:
        got = self._pod_at(off)
        if got is None:
            raise ValueError("pod entry")
        stamp, parts = got
        _, _, _, ne, nc, _ = _POD.unpack_from(self._buf, off)
        p = off + _POD.size + len((parts.uid or "").encode()) + len(parts.own) + ne
        images = {name: loads(b"{" + m + b"}") for name, m in parts.images.items()}
        return stamp, codec.pod_from_members(loads(b"{" + parts.own + b"}"),
                                             loads(b"{" + parts.extra + b"}"),
                                             loads(self._buf[p:p + nc]), images)
