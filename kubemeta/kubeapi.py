"""The Kubernetes API, through the official client. The only module importing it.

Importing ``kubernetes`` costs about half a second, so nothing on the path to
the first reply imports this module: the lookup workers do, in the background.
Every failure of the client, urllib3 or the network is translated here, once,
into kubemeta's ApiError family (``raise ... from e``).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.exceptions import ApiException

from kubemeta import jsonlib
from kubemeta.config import Config
from kubemeta.errors import (
    ApiBadResponse,
    ApiError,
    ApiUnreachable,
    ConfigError,
    status_error,
)
from kubemeta.listproto import Listing

# A Pod or Namespace is a few KiB; a body far larger is not one we asked for.
MAX_BODY_BYTES = 4 * 1024 * 1024
# A node's pods, or every namespace of a large cluster.
MAX_LIST_BYTES = 64 * 1024 * 1024


class TokenSource:
    """A bearer token, from the config or re-read from its file when it changes."""

    def __init__(self, token: str | None, path: str | None) -> None:
        self._token = token.strip() if token else None
        self._path = path
        self._stamp: tuple[float, int, int] | None = None
        self._cached: str | None = None
        self._lock = threading.Lock()

    def get(self) -> str | None:
        if self._token is not None or self._path is None:
            return self._token
        with self._lock:
            try:
                st = os.stat(self._path)
                stamp = (st.st_mtime, st.st_size, st.st_ino)
                if stamp != self._stamp:
                    with open(self._path, encoding="utf-8", errors="replace") as f:
                        self._cached = f.read(64 * 1024).strip() or None
                    self._stamp = stamp
            except OSError:
                # Keep the last token we read: a file being rotated is briefly absent.
                pass
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._stamp = None


class KubeApi:
    """GETs of single objects, answered from the API server's cache (resourceVersion=0)."""

    def __init__(self, cfg: Config, kubelet: bool = False) -> None:
        """The API server's client; with ``kubelet``, the node's kubelet's, with the
        same credentials and the kubelet_* address and TLS settings."""
        self._cfg = cfg
        conf = kubernetes.client.Configuration()
        if cfg.kubeconfig:
            try:
                kubernetes.config.load_kube_config(
                    config_file=cfg.kubeconfig, context=cfg.kubeconfig_context,
                    client_configuration=conf, persist_config=False)
            except Exception as e:
                raise ConfigError(f"kubeconfig {cfg.kubeconfig}: {e}") from e
            self.url = conf.host
        else:
            conf.host = cfg.kubernetes_url.rstrip("/")
            self.url = cfg.kubernetes_url
        ca = cfg.effective_ca_file()
        if ca:
            conf.ssl_ca_cert = ca
        if cfg.client_cert_file:
            conf.cert_file = cfg.client_cert_file
            conf.key_file = cfg.client_key_file
        insecure = cfg.insecure_skip_tls_verify
        if kubelet:
            conf.host = cfg.kubelet_url.rstrip("/")
            self.url = cfg.kubelet_url
            if cfg.kubelet_ca_file:
                conf.ssl_ca_cert = cfg.kubelet_ca_file
            insecure = cfg.kubelet_insecure_skip_tls_verify
        if insecure:
            conf.verify_ssl = False
            urllib3.disable_warnings()
        # We own retries and their pacing; urllib3 must not retry behind our back.
        conf.retries = False
        self._tokens = TokenSource(cfg.token, cfg.effective_token_file())
        self._kubeconfig_auth = bool(cfg.kubeconfig)
        self._conf = conf
        # Certificate files are read when the connection pool is built; rebuild it
        # when they change on disk (checked at most every TLS_RECHECK seconds, and
        # at once after a 401 or a TLS failure).
        self._tls_files = [f for f in (conf.ssl_ca_cert, conf.cert_file, conf.key_file) if f]
        self._tls_stamp = _stamps(self._tls_files)
        self._tls_checked = time.monotonic()
        self._tls_lock = threading.Lock()
        self._client = self._new_client()
        self._timeout = (cfg.api_connect_timeout, cfg.api_read_timeout)
        self._watch_idle = cfg.watch_inactivity_timeout

    TLS_RECHECK = 10.0

    def _new_client(self) -> Any:
        try:
            return kubernetes.client.ApiClient(self._conf)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"TLS setup failed: {e}") from e

    def reload_tls_if_changed(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not self._tls_files or (not force and now - self._tls_checked < self.TLS_RECHECK):
            return False
        with self._tls_lock:
            self._tls_checked = now
            stamp = _stamps(self._tls_files)
            if stamp == self._tls_stamp:
                return False
            try:
                client = self._new_client()
            except ConfigError:
                return False  # half-written files: keep the old pool, look again later
            self._client, self._tls_stamp = client, stamp
            return True

    def get_pod(self, namespace: str, name: str) -> Any:
        return self._get("/api/v1/namespaces/{namespace}/pods/{name}",
                         {"namespace": namespace, "name": name})

    def get_namespace(self, name: str) -> Any:
        return self._get("/api/v1/namespaces/{name}", {"name": name})

    def list_pods(self, node: str) -> Listing:
        """This node's pods, from the API server's cache (resourceVersion=0)."""
        return self._list("/api/v1/pods", [
            ("fieldSelector", f"spec.nodeName={node}"), ("resourceVersion", "0")])

    def kubelet_pods(self) -> Listing:
        """The kubelet's own list of its pods (a client built with ``kubelet``); it
        carries no resourceVersion."""
        return self._list("/pods", [], need_resource_version=False)

    def list_namespaces(self) -> Listing:
        return self._list("/api/v1/namespaces", [("resourceVersion", "0")])

    def _list(self, path: str, query: list[tuple[str, str]],
              need_resource_version: bool = True) -> Listing:
        """A list answer, decoded item by item as it is read (see listproto)."""
        resp = self._call(path, {}, query, self._timeout)
        return Listing(self._body_chunks(resp, MAX_LIST_BYTES), MAX_BODY_BYTES,
                       need_resource_version)

    def _body_chunks(self, resp: Any, limit: int | None) -> Iterator[bytes]:
        """The answer's bytes as they arrive (at most ``limit`` of them): stream()
        hands over each chunk as it comes, where read(n) would wait for n bytes."""
        total = 0
        try:
            chunks = resp.stream(65536, decode_content=True)
            while True:
                try:
                    data = next(chunks, b"")
                except Exception as e:
                    err = translate_transport(e)
                    self._after_error(err)
                    raise err from e
                if not data:
                    return
                total += len(data)
                if limit is not None and total > limit:
                    raise ApiBadResponse(f"answer larger than {limit} bytes", 200)
                yield data
        finally:
            _finish(resp)

    def watch_pods(self, node: str, rv: str, timeout: float) -> Iterator[bytes]:
        return self._stream("/api/v1/pods", [
            ("fieldSelector", f"spec.nodeName={node}"), ("watch", "true"),
            ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(int(timeout)))])

    def watch_namespaces(self, rv: str, timeout: float) -> Iterator[bytes]:
        return self._stream("/api/v1/namespaces", [
            ("watch", "true"), ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(int(timeout)))])

    def _stream(self, path: str, query: list[tuple[str, str]]) -> Iterator[bytes]:
        """A watch answer's bytes as they arrive, after an empty first item that says
        the answer began. A read that waits longer than ``watch_inactivity_timeout``
        fails ("timed out"): a silent stream may be a dead one."""
        resp = self._call(path, {}, query, (self._timeout[0], self._watch_idle))
        try:
            yield b""  # the answer's headers are in: the watch is open
            yield from self._body_chunks(resp, None)
        finally:
            _finish(resp)  # also when stopped before the body was asked for

    def on_unauthorized(self) -> None:
        self._tokens.invalidate()
        self.reload_tls_if_changed(force=True)

    def _after_error(self, err: ApiError) -> None:
        if err.reason.startswith("TLS error"):  # a rotated CA or client certificate?
            self.reload_tls_if_changed(force=True)

    def _call(self, path: str, params: dict[str, str], query: list[tuple[str, str]],
              timeout: tuple[float, float]) -> Any:
        """Send a GET; the answer's headers are in, its body still to read."""
        self.reload_tls_if_changed()
        headers = {"Accept": "application/json"}
        token = self._tokens.get()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return self._client.call_api(
                path, "GET", path_params=params, query_params=query, header_params=headers,
                auth_settings=["BearerToken"] if self._kubeconfig_auth and not token else [],
                _preload_content=False, _request_timeout=timeout,
                _return_http_data_only=True)
        except ApiException as e:
            err = translate_status(e.status or 0, e.reason, e.headers, e.body)
            self._after_error(err)
            raise err from e
        except Exception as e:  # urllib3, ssl, socket: everything on the way
            err = translate_transport(e)
            self._after_error(err)
            raise err from e

    def _get(self, path: str, params: dict[str, str]) -> Any:
        """One object, from the API server's cache (resourceVersion=0)."""
        limit = MAX_BODY_BYTES
        resp = self._call(path, params, [("resourceVersion", "0")], self._timeout)
        try:
            body = resp.read(limit + 1)
        except Exception as e:
            err = translate_transport(e)
            self._after_error(err)
            raise err from e
        finally:
            _finish(resp)  # closes it when the answer was cut off at the limit
        if len(body) > limit:
            raise ApiBadResponse(f"answer larger than {limit} bytes", 200)
        try:
            return jsonlib.loads(body)
        except (ValueError, RecursionError) as e:
            raise ApiBadResponse("answer is not JSON", 200) from e


def _finish(resp: Any) -> None:
    if not resp.closed:
        # Stopped early, the rest of the answer is still on the wire: a pooled
        # connection would hand it to the next request as its answer.
        resp.close()
    resp.release_conn()


def _stamps(paths: list[str]) -> tuple[tuple[float, int] | None, ...]:
    out: list[tuple[float, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((st.st_mtime, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def translate_status(status: int, reason: Any, headers: Any, body: Any) -> ApiError:
    if status == 0:
        # The client wraps urllib3's SSLError itself: "SSLError\n[SSL: ...] ...".
        text = str(reason) if reason else "no answer"
        if text.startswith("SSLError"):
            return ApiUnreachable(f"TLS error: {_tail(text.split(chr(10), 1)[-1])}", 0)
        return ApiUnreachable(text, 0)
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
            return msg[:300]
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
        return ApiUnreachable(f"TLS error: {_tail(text)}")
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
        return ApiUnreachable(f"connection broken: {_tail(text)}")
    return ApiUnreachable(f"{type(cause).__name__}: {_tail(text)}")


def _tail(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


class ApiSource:
    """The store's Source: GET, then shape into the metadata we emit."""

    def __init__(self, cfg: Config, shaper: Any) -> None:
        self.api = KubeApi(cfg)
        self._shaper = shaper

    def pod(self, namespace: str, name: str) -> Any:
        return self._shaper.pod(self.api.get_pod(namespace, name), name)

    def namespace(self, name: str) -> Any:
        return self._shaper.namespace(self.api.get_namespace(name), name)

    def on_unauthorized(self) -> None:
        self.api.on_unauthorized()
