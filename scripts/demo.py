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
sys.path.insert(0, str(REPO / "devel"))  # the API emulator

from apiemulator import ApiEmulator, make_namespace, make_pod  # noqa: E402
from apiemulator.pki import make_pki  # noqa: E402

from harness import (  # noqa: E402
    CRI,
    Rsyslog,
    container_log,
    cri_line,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)

# (namespace, pod, container, runtime, lines): a node running containerd (CRI
# log format) next to a docker json-file one, as during a runtime migration.
SAMPLES = [
    ("shop", "web-7d9f8-abcde", "app", "cri",
     ["GET /cart 200 12ms", "GET /checkout 200 48ms",
      "a 40 KiB line, split by containerd into three pieces: " + "x" * 40000]),
    ("shop", "web-7d9f8-abcde", "istio-proxy", "cri",
     ["[2026-11-21T10:00:00Z] \"GET /cart\" 200"]),
    ("shop", "payments-0", "worker", "docker", ["charged order 1234", "charged order 1235"]),
    ("monitoring", "prometheus-0", "prometheus", "docker",
     ["Server is ready to receive web requests."]),
    ("shop", "not-in-the-api", "app", "cri", ["a pod the API does not know: file-name fields"]),
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
    runtime = {}
    for ns, pod, cont, kind, lines in SAMPLES:
        path = container_log(tmp, ns, pod, cont)
        runtime[str(path)] = kind
        line = cri_line if kind == "cri" else docker_line
        write_lines(path, [line(t) for t in lines])
        total += len(lines)

    # node_name: the default source, a watch of this node's pods, as on a real node.
    cfg = kubemeta_config(tmp, emu, tmp / "token", lookup_deadline=2, node_name="node-1")
    rsyslog = Rsyslog(tmp, shipped_snippet(tmp, cfg, name=CRI), "rsyslog")
    print(f"API emulator at {emu.url}; rsyslogd config {rsyslog.conf}")
    check = rsyslog.validate()
    if check.returncode != 0:
        print(check.stderr)
        return 1
    with rsyslog:
        records = rsyslog.wait_records(total, timeout=60)
    emu.close()

    print(f"\n{len(records)} container log lines (CRI and docker json-file) came out of "
          "rsyslogd enriched:\n")
    for r in records:
        k = r.get("kubernetes", {})
        labels = ",".join(f"{a}={b}" for a, b in (k.get("labels") or {}).items()) or "-"
        text = r["log"].strip()
        text = text if len(text) <= 60 else f"{text[:57]}... ({len(text)} chars)"
        kind = runtime.get(r.get("metadata", {}).get("filename", ""), "?")
        print(f"  [{kind:6}] {k.get('namespace_name')}/{k.get('pod_name')}/"
              f"{k.get('container_name')}  labels[{labels}]  host={k.get('host', '-')}  "
              f"{r.get('stream', '-')}  log={text!r}")
    print("\nOne whole record, as your outputs receive it:\n")
    print(json.dumps(records[0], indent=2))
    if len(records) != total:
        print(f"expected {total} records, got {len(records)}")
        return 1
    print(f"\nkubemeta's own log: {tmp / 'kubemeta.log'}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
