"""``python -m apiemulator --dir DIR``: run the emulator until killed.

Writes DIR/emulator.json with the URLs, the CA file and a valid token file,
so that a test or the demo can point kubemeta at it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from apiemulator.pki import make_pki
from apiemulator.server import ApiEmulator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apiemulator")
    p.add_argument("--dir", required=True, help="directory for certificates, token, state")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--fixtures", help="JSON file: a list of Pod/Namespace/Node objects, or {items}")
    p.add_argument("--token", default="kubemeta-emulator-token")
    args = p.parse_args(argv)
    pki = make_pki(os.path.join(args.dir, "pki"))
    emu = ApiEmulator(pki, port=args.port, control_port=args.control_port)
    emu.add_token(args.token, "system:serviceaccount:kube-system:kubemeta")
    if args.fixtures:
        with open(args.fixtures, encoding="utf-8") as f:
            data = json.load(f)
        for obj in data.get("items", []) if isinstance(data, dict) else data:
            emu.world.apply(obj)
    emu.start()
    token_file = os.path.join(args.dir, "token")
    with open(token_file, "w", encoding="ascii") as f:
        f.write(args.token + "\n")
    info = {"url": emu.url, "control_url": emu.control_url, "ca_file": pki.ca_file,
            "token_file": token_file, "client_cert_file": pki.client_cert,
            "client_key_file": pki.client_key, "pid": os.getpid()}
    tmp = os.path.join(args.dir, "emulator.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, os.path.join(args.dir, "emulator.json"))
    print(f"emulator: API {emu.url}  control {emu.control_url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
