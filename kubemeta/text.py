"""The one rule for text kubemeta did not write (an exception's message, a
server's answer, a bad line) that goes into its own messages: one line, at
most ``limit`` characters, the cut marked with "...", and no secret in it.

Secrets (a bearer token, whatever a kubeconfig's credentials produce) are
registered with ``secret`` where they are read; ``redact`` (and so ``clip``,
and kubemeta's log) replaces them wherever they appear. The registry is the
one piece of process state here: a secret must stay hidden from every thread.
"""

from __future__ import annotations

import threading

LIMIT = 300
REDACTED = "<redacted>"
MIN_SECRET = 8  # shorter values would redact ordinary words
_secrets: frozenset[str] = frozenset()
_lock = threading.Lock()


def secret(value: str | None) -> None:
    """Never show ``value`` in a message from now on."""
    global _secrets
    if value is None:
        return
    parts = {value, value.strip(), *value.split()}
    with _lock:
        _secrets = _secrets | {p for p in parts if len(p) >= MIN_SECRET}


def redact(text: str) -> str:
    for s in _secrets:  # a snapshot of the set: no lock on the hot path
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def clip(text: str, limit: int = LIMIT, *, tail: bool = False) -> str:
    """``tail``: keep the end (a chained exception's message ends with its cause)."""
    text = redact(text)
    one = " ".join(text.split()) if ("\n" in text or "\r" in text) else text
    if len(one) <= limit:
        return one
    return "..." + one[-limit:] if tail else one[:limit] + "..."
