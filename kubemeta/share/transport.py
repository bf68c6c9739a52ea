"""The I/O both sides of a group share: the lock that elects the leader, its
unix datagram socket, and the shared file mapped read-only.

Datagrams are accepted only from processes of the same user (SCM_CREDENTIALS):
the abstract socket namespace has no file permissions.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from kubemeta import files
from kubemeta.clock import Clock
from kubemeta.state import snapshot
from kubemeta.wire.sharedproto import MAX_DATAGRAM, Group, MessageError

T = TypeVar("T")

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def open_lock(group: Group) -> int:
    """The lock file's descriptor. Raises OSError when state_dir is unusable."""
    os.makedirs(os.path.dirname(group.lock_path), mode=0o750, exist_ok=True)
    return files.open_private(group.lock_path, os.O_RDWR | os.O_CREAT)


def try_lead(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


_DIR_FDS: dict[str, int] = {}
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes, its terminating NUL included


def socket_address(path: str) -> str:
    """``path`` as an AF_UNIX address. A state_dir deep enough to overflow
    sun_path is reached through a descriptor of the directory, kept open for
    the process's life: /proc/self/fd/N/name."""
    if len(path.encode()) <= MAX_SOCKET_PATH:
        return path
    directory, name = os.path.split(path)
    fd = _DIR_FDS.get(directory)
    if fd is None:
        fd = _DIR_FDS[directory] = os.open(directory, os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}"


def new_socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    return sock


def receive_decoded(sock: socket.socket, decode: Callable[[bytes], T], clock: Clock
                    ) -> tuple[T, Any] | None:
    """One message from a process of our own user, and its sender's address; None
    for anyone else's, a malformed one, or a socket error (after a pause, so a
    broken socket does not spin its reader)."""
    try:
        got = receive(sock)
        return None if got is None else (decode(got[0]), got[1])
    except MessageError:
        return None
    except OSError:
        clock.sleep(0.1)
        return None


def receive(sock: socket.socket) -> tuple[bytes, Any] | None:
    """One datagram from a process of our own user; None for anyone else's."""
    data, anc, _, addr = sock.recvmsg(MAX_DATAGRAM + 1, socket.CMSG_SPACE(_CREDS.size))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS \
                and len(payload) >= _CREDS.size:
            _, uid, _ = _CREDS.unpack(payload[:_CREDS.size])
            if uid == os.getuid():
                return data, addr
    return None


# A view nobody can change once published: truncating a mapped file in place
# would kill every follower reading it with SIGBUS.
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def sealed_view(data: bytes) -> int:
    """``data`` in a memory-only file (memfd), sealed: it can no longer shrink,
    grow or change. The caller keeps the descriptor while followers may open it."""
    fd = os.memfd_create("kubemeta-view", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pointer(fd: int) -> bytes:
    """What the shared file holds: where followers open the view (this process's
    descriptor, through /proc)."""
    return f"{os.getpid()} {fd}\n".encode()


def map_view(path: str) -> mmap.mmap:
    """The view the shared file at ``path`` points to, mapped read-only: one copy
    in memory however many helpers map it; one replaced later stays mapped as it
    was until its last reader lets go. Raises OSError or ValueError when the
    file or the view is not one a leader of this user published."""
    with open(files.open_private(path), "rb") as f:
        text = f.read(64).decode("ascii", "replace").split()
    if len(text) != 2 or not all(t.isdigit() for t in text):
        raise ValueError("not a pointer to a view")
    fd = os.open(f"/proc/{text[0]}/fd/{text[1]}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise ValueError("a view of another user's")
        if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS != SEALS:
            raise ValueError("a view that is not sealed")
        if st.st_size > snapshot.MAX_BYTES:
            raise ValueError(f"larger than {snapshot.MAX_BYTES} bytes")
        return mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
