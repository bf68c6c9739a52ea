"""The README's demo: emulator + real rsyslogd + sample container logs."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from kubemeta.emulator import ApiEmulator, make_namespace, make_pod  # noqa: E402
from kubemeta.emulator.pki import make_pki  # noqa: E402

from harness import (  # noqa: E402
    Rsyslog,
    container_log,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)

SAMPLES = [
    ("shop", "web-7d9f8-abcde", "app", ["GET /cart 200 12ms", "GET /checkout 200 48ms"]),
    ("shop", "web-7d9f8-abcde", "istio-proxy", ["[2026-11-21T10:00:00Z] \"GET /cart\" 200"]),
    ("shop", "payments-0", "worker", ["charged order 1234", "charged order 1235"]),
    ("monitoring", "prometheus-0", "prometheus", ["Server is ready to receive web requests."]),
    ("shop", "not-in-the-api", "app", ["a pod the API does not know: file-name fields"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kubemeta-demo-"))
    emu = ApiEmulator(make_pki(str(tmp / "pki"))).start()
    emu.add_token("demo-token", "system:serviceaccount:kube-system:kubemeta")
    (tmp / "token").write_text("demo-token\n")
    emu.world.apply(make_namespace("shop", {"team": "checkout", "env": "prod"}))
    emu.world.apply(make_namespace("monitoring", {"team": "sre"}))
    emu.world.apply(make_pod("shop", "web-7d9f8-abcde",
                             {"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8"},
                             containers=("app", "istio-proxy")))
    emu.world.apply(make_pod("shop", "payments-0", {"app.kubernetes.io/name": "payments"}))
    emu.world.apply(make_pod("monitoring", "prometheus-0", {"app": "prometheus"}))
    total = 0
    for ns, pod, cont, lines in SAMPLES:
        write_lines(container_log(tmp, ns, pod, cont), [docker_line(t) for t in lines])
        total += len(lines)

    cfg = kubemeta_config(tmp, emu, tmp / "token", lookup_deadline=2)
    rsyslog = Rsyslog(tmp, shipped_snippet(tmp, cfg), "rsyslog")
    print(f"API emulator at {emu.url}; rsyslogd config {rsyslog.conf}")
    check = rsyslog.validate()
    if check.returncode != 0:
        print(check.stderr)
        return 1
    with rsyslog:
        records = rsyslog.wait_records(total, timeout=60)
    emu.close()

    print(f"\n{len(records)} container log lines came out of rsyslogd enriched:\n")
    for r in records:
        k = r.get("kubernetes", {})
        labels = ",".join(f"{a}={b}" for a, b in (k.get("labels") or {}).items()) or "-"
        print(f"  {k.get('namespace_name')}/{k.get('pod_name')}/{k.get('container_name')}"
              f"  labels[{labels}]  host={k.get('host', '-')}  log={r['log'].strip()!r}")
    print("\nOne whole record, as your outputs receive it:\n")
    print(json.dumps(records[0], indent=2))
    print(f"\nkubemeta's own log: {tmp / 'kubemeta.log'}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
