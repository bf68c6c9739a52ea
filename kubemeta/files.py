"""The files kubemeta writes (snapshot, Prometheus textfile, stats line), written
so that no other local user can redirect them.

The directories may be writable by others (node-exporter's textfile directory
often is): a fixed temporary name there could be a link planted to any file,
and root would write through it. ``replace`` writes a new file under a random
name created exclusively (never through a link) and renames it over the target,
which replaces a link rather than following it. ``append`` refuses to open a
link. Neither logs; callers say what failed.

state_dir is another matter: what is read from it (the lock, the shared view,
the snapshot) is trusted, so it must be this user's alone. ``private_dir``
says why a directory is not; ``open_private`` opens a file in it only when
this user owns it and nobody else may write it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable


class TooLarge(ValueError):
    """The data would exceed the limit it was given; the old file is kept."""


def replace(path: str, data: bytes | Iterable[bytes], mode: int = 0o640,
            durable: bool = False, limit: int | None = None) -> None:
    """Replace ``path`` atomically: readers see the old file or the new, never half.
    ``durable``: on disk before it replaces the old file (a crash keeps one whole).
    Raises OSError, or TooLarge past ``limit`` bytes, and then leaves the old file."""
    chunks = (data,) if isinstance(data, bytes) else data
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 16) as f:
            size = 0
            for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise TooLarge(f"it would be larger than {limit} bytes")
                f.write(chunk)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append(path: str, data: bytes, mode: int = 0o640) -> None:
    """Append ``data`` to ``path`` (created with ``mode``); a link there is refused
    (ELOOP), not followed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(e.errno, "it is a symbolic link, which kubemeta does not write "
                                   "through (another user may have planted it)") from e
        raise
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def private_dir(path: str) -> str | None:
    """Make ``path`` (mode 0750) if it is missing; then why it is unsafe to
    trust, or None: it must be a directory, not a link, owned by this user (or
    root), and writable by nobody else."""
    try:
        os.makedirs(path, mode=0o750, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        return f"cannot create it ({e.strerror or e})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid not in (os.getuid(), 0):
        return f"it is owned by uid {st.st_uid}, another user"
    if st.st_mode & 0o022:
        return f"others may write to it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def open_private(path: str, flags: int = os.O_RDONLY) -> int:
    """A file of state_dir, opened without following a link (created 0640 with
    O_CREAT); OSError EPERM when another user owns it or others may write it."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise OSError(errno.EPERM, f"{path} is not this user's alone (owner uid "
                                       f"{st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}); "
                                       "not trusted")
    except BaseException:
        os.close(fd)
        raise
    return fd
