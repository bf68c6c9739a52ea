"""What the network and the API answer, named as kubeapi raises it: a status
and its Status body become an ApiError, a transport failure the words an
operator would use ("connection refused"). Called from kubeapi only, its one
translation point."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import urllib3

from kubemeta import jsonlib
from kubemeta.errors import ApiError, ApiUnreachable, status_error
from kubemeta.text import clip


def translate_status(status: int, reason: Any, headers: Any, body: Any) -> ApiError:
    return status_error(status, str(reason) if reason else None, _status_message(body),
                        _retry_after(headers))


def _status_message(body: Any) -> str | None:
    """The message of a metav1.Status body, if the answer is one."""
    if not body:
        return None
    try:
        raw = body if isinstance(body, bytes) else str(body).encode()
        obj = jsonlib.loads(raw[:65536])
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict) and obj.get("kind") == "Status":
        msg = obj.get("message")
        if isinstance(msg, str):
            return clip(msg)
    return None


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        if value is None:
            return None
        seconds = float(value)
    except (TypeError, ValueError, AttributeError):
        return None
    return seconds if 0 <= seconds <= 3600 else None


def translate_transport(e: BaseException) -> ApiError:
    """Name a transport failure the way an operator would ("connection refused")."""
    cause: BaseException = e
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        cause = e.reason
    text = str(cause)
    low = text.lower()
    if isinstance(cause, urllib3.exceptions.SSLError | ssl.SSLError):
        return ApiUnreachable(f"TLS error: {clip(text, tail=True)}")
    # Before timeouts: urllib3 1.26's NewConnectionError subclasses ConnectTimeoutError.
    if isinstance(cause, socket.gaierror) or "name or service not known" in low \
            or "failed to resolve" in low or "temporary failure in name resolution" in low:
        return ApiUnreachable("DNS lookup failed")
    if isinstance(cause, ConnectionRefusedError) or "connection refused" in low:
        return ApiUnreachable("connection refused")
    if isinstance(cause, urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError):
        return ApiUnreachable("timed out")
    if isinstance(cause, ConnectionResetError) or "reset by peer" in low:
        return ApiUnreachable("connection reset")
    if isinstance(cause, urllib3.exceptions.ProtocolError):
        if "InvalidChunkLength" in text or "IncompleteRead" in text:
            return ApiUnreachable("connection broken mid-answer")
        return ApiUnreachable(f"connection broken: {clip(text, tail=True)}")
    return ApiUnreachable(f"{type(cause).__name__}: {clip(text, tail=True)}")


