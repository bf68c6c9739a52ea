"""The Kubernetes API over HTTPS. The only module importing the ``kubernetes`` client.

Requests go through urllib3 directly, whose request and streaming API is the
same in 1.26 and 2.x; the generated client's calling conventions change between
releases (``call_api`` changed in kubernetes 36 and 37), so kubemeta uses only
``kubernetes.config`` to read a kubeconfig, and only when one is configured.
Every failure of urllib3 or the network is translated here, once, into
kubemeta's ApiError family (``raise ... from e``). Anything else raised on the
way (a TypeError, a library answering in an unexpected shape) is a bug, not an
outage: it is left to propagate, for internal.report.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from kubemeta import __version__, jsonlib, text
from kubemeta.clock import SYSTEM, Clock
from kubemeta.errors import (
    ApiBadResponse,
    ApiError,
    ApiUnauthorized,
    ApiUnreachable,
    ConfigError,
)
from kubemeta.kube import deadlines
from kubemeta.kube.credentials import ClientSettings, Endpoint, TokenFile, endpoint, stamps
from kubemeta.kube.httperrors import translate_status, translate_transport
from kubemeta.text import clip
from kubemeta.wire.listproto import Listing

log = logging.getLogger("kubemeta.kube.kubeapi")

# A Pod or Namespace is a few KiB; a body far larger is not one we asked for.
MAX_BODY_BYTES = 4 * 1024 * 1024
# A node's pods, or every namespace of a large cluster.
MAX_LIST_BYTES = 64 * 1024 * 1024
# Of an error answer only its Status message is used.
MAX_ERROR_BYTES = 64 * 1024
# Lookup workers, two watches and the kubelet poller each hold one connection.
POOL_SIZE = 16
# What the network and the TLS stack raise; anything else is not a transport failure.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
USER_AGENT = f"kubemeta/{__version__}"


def _kubeconfig_endpoint(s: ClientSettings) -> Endpoint:
    """Read with the client's own loader: it knows every way a kubeconfig names
    credentials. Its Configuration is read through attributes that every release
    from 22.6 on has, and auth_settings(), which runs the refresh hooks."""
    import kubernetes.client  # an ImportError here is internal: the package is broken
    import kubernetes.config
    import yaml

    config_exception = kubernetes.config.ConfigException
    conf = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(
            config_file=s.kubeconfig, context=s.kubeconfig_context,
            client_configuration=conf, persist_config=False)
    # What the file provokes; a TypeError or AttributeError is left to propagate:
    # that is the loader and kubemeta disagreeing, an internal error.
    except (config_exception, OSError, ValueError, KeyError, yaml.YAMLError) as e:
        raise ConfigError(f"kubeconfig {s.kubeconfig}: {clip(str(e), tail=True)}") from e
    _off_disk(conf, kubernetes.config.kube_config)

    def auth() -> str | None:
        try:
            value = conf.auth_settings().get("BearerToken", {}).get("value")
        except config_exception as e:  # an exec plugin or token refresh that failed
            raise ApiUnauthorized(f"kubeconfig credentials: {clip(str(e), tail=True)}") from e
        if not isinstance(value, str) or not value:
            return None
        text.secret(value.removeprefix("Bearer "))
        return value

    return Endpoint(url=str(conf.host).rstrip("/"), ca_file=conf.ssl_ca_cert or None,
                    cert_file=conf.cert_file or None, key_file=conf.key_file or None,
                    verify=bool(conf.verify_ssl),
                    server_name=getattr(conf, "tls_server_name", None) or None,
                    proxy=getattr(conf, "proxy", None) or None, kubeconfig_auth=auth)


def _off_disk(conf: Any, loader: Any) -> None:
    """Keys and certificates embedded in a kubeconfig: the loader writes each to a
    file in /tmp that only a normal interpreter exit removes, and a helper ends
    with os._exit. Each moves into a memfd, which this process reads by its
    /proc path and which is never on disk."""
    written = getattr(loader, "_temp_files", None)
    if not isinstance(written, dict):
        return
    moved: dict[str, str] = {}
    for content, path in list(written.items()):
        try:
            with open(path, "rb") as f:
                data = f.read()
            fd = os.memfd_create("kubemeta-credential", os.MFD_CLOEXEC)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.unlink(path)
        except OSError:
            continue  # left as the loader made it
        del written[content]  # the loader would hand out the removed path again
        moved[path] = f"/proc/self/fd/{fd}"
    for attr in ("ssl_ca_cert", "cert_file", "key_file"):
        path = getattr(conf, attr, None)
        if path in moved:
            setattr(conf, attr, moved[path])


class KubeApi:
    """GETs of single objects, lists and watches, answered from the API server's
    cache (resourceVersion=0)."""

    def __init__(self, settings: ClientSettings, clock: Clock = SYSTEM) -> None:
        ep = endpoint(settings, _kubeconfig_endpoint)
        self._clock = clock
        self._ep = ep
        self.url = ep.url
        if not ep.verify:
            urllib3.disable_warnings()
        self.warnings = ep.warnings
        for w in ep.warnings:
            _warn_once(w)
        # Plain http carries no credentials (allow_insecure_http), nor does a
        # request to a kubelet that is not verified.
        self._plain = ep.url.startswith("http://") or ep.anonymous
        self._tokens = TokenFile(settings.token, settings.token_file)
        # Certificate files are read when a connection is made; new connections
        # use the new files once the pool is rebuilt (checked at most every
        # TLS_RECHECK seconds, and at once after a 401 or a TLS failure).
        self._tls_files = [f for f in (ep.ca_file, ep.cert_file, ep.key_file) if f]
        self._tls_stamp = stamps(self._tls_files)
        self._tls_checked = clock()
        self._tls_lock = threading.Lock()
        self._deadlines = deadlines.Deadlines(clock)
        self._pool = self._new_pool()
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._watch_idle = settings.watch_idle_timeout

    TLS_RECHECK = 10.0

    def _new_pool(self) -> Any:
        ep = self._ep
        kw: dict[str, Any] = {
            "cert_reqs": "CERT_REQUIRED" if ep.verify else "CERT_NONE",
            "ca_certs": ep.ca_file, "cert_file": ep.cert_file, "key_file": ep.key_file,
            "maxsize": POOL_SIZE, "retries": False}
        if ep.server_name:
            kw["server_hostname"] = ep.server_name
        try:
            pool = (urllib3.ProxyManager(ep.proxy, **kw) if ep.proxy
                    else urllib3.PoolManager(**kw))
        except (ValueError, urllib3.exceptions.ProxySchemeUnknown) as e:
            raise ConfigError(f"cannot reach {ep.url}: {e}") from e
        pool.pool_classes_by_scheme = deadlines.pool_classes(urllib3)
        return pool

    def reload_tls_if_changed(self, force: bool = False) -> bool:
        now = self._clock()
        if not self._tls_files or (not force and now - self._tls_checked < self.TLS_RECHECK):
            return False
        with self._tls_lock:
            self._tls_checked = now
            stamp = stamps(self._tls_files)
            if stamp == self._tls_stamp:
                return False
            old, self._pool, self._tls_stamp = self._pool, self._new_pool(), stamp
        old.clear()  # idle connections made with the old files
        return True

    def get_pod(self, namespace: str, name: str) -> Any:
        return self._get(f"/api/v1/namespaces/{_seg(namespace)}/pods/{_seg(name)}")

    def get_namespace(self, name: str) -> Any:
        return self._get(f"/api/v1/namespaces/{_seg(name)}")

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

    def list_node(self, node: str) -> Listing:
        """This node's object alone (extra_fields: node_labels)."""
        return self._list("/api/v1/nodes", [("fieldSelector", f"metadata.name={node}"),
                                            ("resourceVersion", "0")])

    def _list(self, path: str, query: list[tuple[str, str]],
              need_resource_version: bool = True) -> Listing:
        """A list answer, decoded item by item as it is read (see listproto)."""
        resp = self._call(path, query, self._timeout)
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
                except TRANSPORT_ERRORS as e:
                    raise self._transport_error(e) from e
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

    def watch_node(self, node: str, rv: str, timeout: float) -> Iterator[bytes]:
        return self._stream("/api/v1/nodes", [
            ("fieldSelector", f"metadata.name={node}"), ("watch", "true"),
            ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(int(timeout)))])

    def _stream(self, path: str, query: list[tuple[str, str]]) -> Iterator[bytes]:
        """A watch answer's bytes as they arrive, after an empty first item that says
        the answer began. A read that waits longer than ``watch_inactivity_timeout``
        fails ("timed out"): a silent stream may be a dead one."""
        resp = self._call(path, query, (self._timeout[0], self._watch_idle))
        try:
            yield b""  # the answer's headers are in: the watch is open
            yield from self._body_chunks(resp, None)
        finally:
            _finish(resp)  # also when stopped before the body was asked for

    def on_unauthorized(self) -> None:
        self._tokens.invalidate()
        self.reload_tls_if_changed(force=True)

    def _transport_error(self, e: BaseException) -> ApiError:
        err = translate_transport(e)
        if err.reason.startswith("TLS error"):  # a rotated CA or client certificate?
            self.reload_tls_if_changed(force=True)
        return err

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self._plain:
            return headers
        token = self._tokens.get()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self._ep.kubeconfig_auth is not None:
            value = self._ep.kubeconfig_auth()
            if value:
                headers["Authorization"] = value
        return headers

    def _call(self, path: str, query: list[tuple[str, str]],
              timeout: tuple[float, float]) -> Any:
        """Send a GET; the answer's headers are in, its body still to read. An
        answer other than 200 is read (at most MAX_ERROR_BYTES) and raised."""
        self.reload_tls_if_changed()
        url = self._ep.url + path + (f"?{urlencode(query)}" if query else "")
        for again in (True, False):
            try:
                resp = self._pool.request(
                    "GET", url, headers=self._headers(), preload_content=False, redirect=False,
                    retries=False, timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
                break
            except TRANSPORT_ERRORS as e:
                if not (again and deadlines.closed_on_reuse()):
                    raise self._transport_error(e) from e
                # The server closed a kept-alive connection as this request went out.
                log.debug("GET %s: connection closed on reuse, sent again", path)
        if resp.status == 200:
            return resp
        try:
            body = resp.read(MAX_ERROR_BYTES)
        except TRANSPORT_ERRORS:
            body = b""  # the status says enough
        finally:
            _finish(resp)
        err = translate_status(resp.status, resp.reason, resp.headers, body)
        raise err

    def _get(self, path: str) -> Any:
        """One object, from the API server's cache (resourceVersion=0), within
        connect plus read timeout in all: a server trickling its answer keeps
        each read within the read timeout, and would hold a lookup worker."""
        limit = MAX_BODY_BYTES
        deadline = self._clock() + self._timeout[0] + self._timeout[1]
        with self._deadlines.bound(deadline) as watched:
            try:
                resp = self._call(path, [("resourceVersion", "0")], self._timeout)
            except ApiError as e:
                if any(w.expired for w in watched):  # its headers came too slowly
                    raise self._too_slow() from e
                raise
        try:
            body = self._read_until(resp, limit + 1, deadline)
        except TRANSPORT_ERRORS as e:
            raise self._transport_error(e) from e
        finally:
            _finish(resp)  # closes it when the answer was cut off at the limit
        if len(body) > limit:
            raise ApiBadResponse(f"answer larger than {limit} bytes", 200)
        try:
            return jsonlib.loads(body)
        except (ValueError, RecursionError) as e:
            raise ApiBadResponse("answer is not JSON", 200) from e

    def _too_slow(self) -> ApiUnreachable:
        return ApiUnreachable(f"timed out: the answer took longer than "
                              f"{self._timeout[0] + self._timeout[1]:.0f} s in all")

    def _read_until(self, resp: Any, limit: int, deadline: float) -> bytes:
        """At most ``limit`` bytes of the body, read as they arrive (read1: one
        receive at a time, where read(n) waits for n bytes), until ``deadline``."""
        fp: Any = getattr(resp, "_fp", None)
        read = getattr(fp, "read1", None) or resp.read
        parts: list[bytes] = []
        got = 0
        while got < limit:
            if self._clock() > deadline:
                raise self._too_slow()
            data = read(min(65536, limit - got))
            if not data:
                # The whole answer is in. http.client's read1 leaves a finished
                # answer open, and an open answer's connection is closed rather
                # than pooled; read(0) marks it done, so the next GET reuses it.
                if read is not resp.read:
                    fp.read(0)
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)



_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Once per process: every helper's client is built more than once."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message, extra={"event": "tls_weakened"})


def _seg(value: str) -> str:
    """One path segment: a name cannot climb to another path."""
    return quote(value, safe="")


def _finish(resp: Any) -> None:
    if not resp.closed:
        # Stopped early, the rest of the answer is still on the wire: a pooled
        # connection would hand it to the next request as its answer.
        resp.close()
    resp.release_conn()
