"""omprog mode's sink address: ``file:/path``, ``unix:/path`` or ``tcp:host:port``."""

from __future__ import annotations

import re
from typing import NamedTuple

from kubemeta.errors import ConfigError


class Sink(NamedTuple):
    """Where omprog mode writes: ``kind`` is file, unix or tcp."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind != "tcp":
            return f"{self.kind}:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_sink(text: str) -> Sink:
    """``file:/path``, ``unix:/path`` or ``tcp:host:port`` (``tcp:[::1]:port`` for IPv6)."""
    kind, _, rest = text.partition(":")
    if kind in ("file", "unix"):
        if not rest.startswith("/"):
            raise ConfigError(f"sink: {kind}: needs an absolute path, got {text!r}")
        return Sink(kind, path=rest)
    if kind == "tcp":
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]+)|([^:\[\]]+):([0-9]+)", rest)
        if m:
            host = m.group(1) or m.group(3)
            port = int(m.group(2) or m.group(4))
            if 0 < port < 65536:
                return Sink("tcp", host=host, port=port)
        raise ConfigError(f"sink: expected tcp:host:port, got {text!r}")
    raise ConfigError(f"sink: expected file:/path, unix:/path or tcp:host:port, got {text!r}")
