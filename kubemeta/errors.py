"""kubemeta's exception family.

Bad input from rsyslog raises RecordError and nothing else; problems with the
configuration raise ConfigError; everything the Kubernetes API (or the road to
it) does wrong is translated once, in kubeapi, into an ApiError subclass; a
sink that does not take a line in omprog mode raises SinkError.
"""

from __future__ import annotations


class KubemetaError(Exception):
    """Base of every error kubemeta raises on purpose."""


class RecordError(KubemetaError):
    """A line from rsyslog that cannot be understood; it is answered with {}."""


class ShapeError(KubemetaError, ValueError):
    """An API object that is not shaped like the kind we asked for."""


class ConfigError(KubemetaError):
    """A configuration problem, worded for the operator who has to fix it."""


class SinkError(KubemetaError):
    """omprog mode: the sink did not take a line; rsyslog is told and resends it."""


class ApiError(KubemetaError):
    """The Kubernetes API did not give us the object.

    ``status`` is the HTTP status when there was one (0 for transport
    failures); ``reason`` is a short operator-facing description used in state
    change messages ("403 Forbidden", "connection refused").
    """

    def __init__(self, reason: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class ApiNotFound(ApiError):
    """404: the object does not exist. A verdict, cached briefly."""


class ApiUnauthorized(ApiError):
    """401: credentials rejected; the token or certificate files are re-read."""


class ApiForbidden(ApiError):
    """403: RBAC says no. Right after an API server restart this is transient."""


class ApiThrottled(ApiError):
    """429: too many requests; honour Retry-After."""


class ApiServerError(ApiError):
    """5xx or any other unexpected status."""


class ApiUnreachable(ApiError):
    """No HTTP answer: refused, reset, timed out, TLS or DNS failure."""


class ApiBadResponse(ApiError):
    """An answer that is not the JSON object we asked for."""


class ApiTooNew(ApiError):
    """504 ResourceVersionTooLarge: the server is behind the version asked for (a
    restored etcd, a lagging replica); list again, as client-go does."""


class ApiGone(ApiError):
    """410 Gone: a watch's resourceVersion is too old; list again."""


STATUS_WORDS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 410: "Gone",
                429: "Too Many Requests", 500: "Internal Server Error",
                502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def status_error(status: int, words: str | None = None, message: str | None = None,
                 retry_after: float | None = None) -> ApiError:
    """The ApiError for an HTTP status (an answer's, or a watch ERROR event's)."""
    text = f"{status} {STATUS_WORDS.get(status) or words or 'error'}"
    detail = f"{text}: {message}" if message else text
    if status == 404:
        return ApiNotFound(text, status)
    if status == 401:
        return ApiUnauthorized(text, status)
    if status == 403:
        return ApiForbidden(detail, status)
    if status == 410:
        return ApiGone(detail, status)
    if status == 429:
        return ApiThrottled(text, status, retry_after=retry_after)
    if status == 504 and message and "too large resource version" in message.lower():
        return ApiTooNew(detail, status, retry_after=retry_after)
    return ApiServerError(detail, status, retry_after=retry_after)
