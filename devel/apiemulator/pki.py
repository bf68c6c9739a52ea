"""Certificates for the emulator: a CA, a server certificate, a client certificate.

Made with the openssl command, which every Debian machine has.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Pki:
    ca_file: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _run(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _issue(d: str, name: str, cn: str, ext: str) -> None:
    _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w", encoding="ascii") as f:
        f.write(ext)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650", "-sha256",
         "-extfile", f"{name}.ext", cwd=d)


def make_pki(d: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
             client_cn: str = "system:node:node-1") -> Pki:
    """Create (or reuse) the certificates in directory ``d``."""
    os.makedirs(d, exist_ok=True)
    p = Pki(*(os.path.join(d, n) for n in ("ca.crt", "ca.key", "server.crt", "server.key",
                                           "client.crt", "client.key")))
    if all(os.path.exists(x) for x in (p.ca_file, p.server_cert, p.client_cert)):
        return p
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-sha256",
         "-subj", "/CN=kubemeta-emulator-ca",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    san = ",".join(f"IP:{h}" if h[0].isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    _issue(d, "server", "kube-apiserver",
           f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _issue(d, "client", client_cn,
           "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=clientAuth\n")
    for name in ("ca.key", "server.key", "client.key"):
        os.chmod(os.path.join(d, name), 0o600)
    return p
