"""The one rule for text kubemeta did not write (an exception's message, a
server's answer, a bad line) that goes into its own messages: one line, at
most ``limit`` characters, the cut marked with "...". Pure."""

from __future__ import annotations

LIMIT = 300


def clip(text: str, limit: int = LIMIT, *, tail: bool = False) -> str:
    """``tail``: keep the end (a chained exception's message ends with its cause)."""
    one = " ".join(text.split()) if ("\n" in text or "\r" in text) else text
    if len(one) <= limit:
        return one
    return "..." + one[-limit:] if tail else one[:limit] + "..."
