"""What a client needs to reach the API server or the kubelet, and to prove
who it is: the settings value the composition root (app.py) hands the client,
and the bearer token, re-read from its file when the file changes."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kubemeta import text
from kubemeta.errors import ConfigError

log = logging.getLogger("kubemeta.kube.credentials")


@dataclass(frozen=True)
class KubeletTarget:
    """The node's kubelet: its own address and TLS, the cluster's credentials."""

    url: str
    ca_file: str | None
    insecure_skip_tls_verify: bool


@dataclass(frozen=True)
class ClientSettings:
    url: str                         # kubernetes_url; a kubeconfig's server wins
    kubeconfig: str | None
    kubeconfig_context: str | None
    ca_file: str | None              # None: the kubeconfig's, else the system's CAs
    cert_file: str | None
    key_file: str | None
    insecure_skip_tls_verify: bool
    token: str | None
    token_file: str | None
    connect_timeout: float
    read_timeout: float
    watch_idle_timeout: float        # a watch silent this long is taken for dead
    allow_insecure_http: bool = False  # http:// accepted, and no credentials sent there
    kubelet: KubeletTarget | None = None  # set: this client talks to the kubelet

    def for_kubelet(self, target: KubeletTarget) -> ClientSettings:
        return dataclasses.replace(self, kubelet=target)


class TokenFile:
    """A bearer token, from the config or re-read from its file when it changes."""

    def __init__(self, token: str | None, path: str | None) -> None:
        text.secret(token)
        self._token = token.strip() if token else None
        self._path = path
        self._stamp: tuple[float, int, int] | None = None
        self._cached: str | None = None
        self._unreadable: str | None = None  # why the file could not be read, once said
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
                        raw = f.read(64 * 1024)
                    text.secret(raw)
                    self._cached = _token_in(raw, self._path)
                    self._stamp = stamp
                self._unreadable = None
            except OSError as e:
                # Keep the last token we read: a file being rotated is briefly absent.
                # Said once while it stays unreadable: a 401 alone would not name it.
                why = e.strerror or str(e)
                if why != self._unreadable:
                    self._unreadable = why
                    log.error("cannot read the token file %s: %s (kubemeta runs as uid %d); "
                              "%s", self._path, why, os.geteuid(),
                              "the last token read is sent meanwhile" if self._cached else
                              "no token is sent until it can be read",
                              extra={"event": "config_error"})
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._stamp = None


TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what an HTTP header value may carry


def _token_in(raw: str, path: str) -> str | None:
    """The token in a token file's text; None (and said once per change of the
    file, never with the value) when it is not one line of printable ASCII."""
    token = raw.strip()
    if not token:
        return None
    if not TOKEN_CHARS.fullmatch(token):
        log.error("token file %s does not hold one token (one line of printable ASCII): "
                  "no token is sent until it does", path, extra={"event": "config_error"})
        return None
    return token


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and how they prove who sends them (resolved from
    ClientSettings and the kubeconfig, by kubeapi.endpoint)."""

    url: str                      # https://host:port, no trailing slash
    ca_file: str | None = None    # None: the system's CAs
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_name: str | None = None  # a kubeconfig's tls-server-name
    proxy: str | None = None        # a kubeconfig's proxy-url
    # The Authorization header's value of a kubeconfig's user (exec plugins and
    # expiring tokens refresh here); None: no credentials of its own.
    kubeconfig_auth: Callable[[], str | None] | None = None
    # What an operator must hear about: TLS weaker than kubemeta's own settings ask.
    warnings: tuple[str, ...] = ()
    anonymous: bool = False  # send no credentials: the peer is not verified


def stamps(paths: list[str]) -> tuple[tuple[float, int] | None, ...]:
    out: list[tuple[float, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((st.st_mtime, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def endpoint(s: ClientSettings, kubeconfig: Callable[[ClientSettings], Endpoint]) -> Endpoint:
    """The API server's endpoint; with ``s.kubelet``, the node's kubelet's, with
    the same credentials and the kubelet's own address and TLS settings.
    ``kubeconfig`` reads a kubeconfig (kubeapi's, with the client's loader)."""
    ep = kubeconfig(s) if s.kubeconfig else Endpoint(
        url=s.url.rstrip("/"), verify=not s.insecure_skip_tls_verify)
    ca = s.ca_file or ep.ca_file
    cert, key = ep.cert_file, ep.key_file
    if s.cert_file:
        cert, key = s.cert_file, s.key_file
    warnings: list[str] = []
    if s.ca_file:
        verify = not s.insecure_skip_tls_verify  # kubemeta's own CA: its setting wins
    else:
        verify = ep.verify and not s.insecure_skip_tls_verify
        if not ep.verify and not s.insecure_skip_tls_verify:
            warnings.append(
                f"kubeconfig {s.kubeconfig} turns TLS verification off for {ep.url}: anyone "
                "who can answer for that address gets the credentials; set ca_file (or fix "
                "the kubeconfig) to verify it")
    url = ep.url
    auth = ep.kubeconfig_auth
    anonymous = False
    if s.kubelet is not None:
        url = s.kubelet.url.rstrip("/")
        ca = s.kubelet.ca_file or ca
        verify = not s.kubelet.insecure_skip_tls_verify
        if not verify:
            # Any local user can listen on the kubelet's port while it is down.
            anonymous = True
            cert = key = auth = None
            warnings.append(
                f"kubelet_insecure_skip_tls_verify: kubemeta sends no credentials to the "
                f"kubelet at {url}, which it cannot verify; set kubelet_ca_file to the "
                "kubelet's CA (for a self-signed kubelet, /var/lib/kubelet/pki/kubelet.crt)")
    if url.startswith("http://"):
        if not s.allow_insecure_http:
            raise ConfigError(f"{url} is plain http, where credentials would travel in clear; "
                              "use https://, or set allow_insecure_http: true")
        cert = key = auth = None  # and no token: see KubeApi._headers
    kubelet = s.kubelet is not None
    return Endpoint(url=url, ca_file=ca, cert_file=cert, key_file=key, verify=verify,
                    server_name=None if kubelet else ep.server_name,
                    proxy=None if kubelet else ep.proxy, kubeconfig_auth=auth,
                    warnings=tuple(warnings), anonymous=anonymous)
