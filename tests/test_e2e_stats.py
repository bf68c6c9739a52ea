"""The node's counters reach rsyslog's impstats stream in the form that
rsyslog_exporter reads for mmkubernetes, through a real rsyslogd and the shipped
example snippet: dashboards built on rsyslog_kubernetes_* keep working."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from apiemulator import ApiEmulator, make_namespace, make_pod

from harness import (
    DOCKER,
    SHIPPED,
    Rsyslog,
    container_log,
    docker_line,
    kubemeta_config,
    shipped_snippet,
    write_lines,
)

EXAMPLE = "55-kubemeta-stats-exporter.conf.example"
# rsyslog_exporter's names for mmkubernetes's counters (its kubernetes type).
EXPORTED = {
    "recordseen": "rsyslog_kubernetes_record_seen_total",
    "namespacemetadatasuccess": "rsyslog_kubernetes_namespace_metadata_success_total",
    "namespacemetadatanotfound": "rsyslog_kubernetes_namespace_metadata_notfound_total",
    "namespacemetadatabusy": "rsyslog_kubernetes_namespace_metadata_busy_total",
    "namespacemetadataerror": "rsyslog_kubernetes_namespace_metadata_error_total",
    "podmetadatasuccess": "rsyslog_kubernetes_pod_metadata_success_total",
    "podmetadatanotfound": "rsyslog_kubernetes_pod_metadata_notfound_total",
    "podmetadatabusy": "rsyslog_kubernetes_pod_metadata_busy_total",
    "podmetadataerror": "rsyslog_kubernetes_pod_metadata_error_total",
}
# What it takes a line for, first match wins: only "mmkubernetes" makes a kubernetes line.
OTHER_TYPES = ("processed", "submitted", "called.recvmmsg", "enqueued", "utime", "dynstats",
               "dynafile cache", "omfwd")


def exporter_metrics(line: str) -> dict[str, int]:
    """One line as omprog hands it to rsyslog_exporter (rsyslog's file format:
    date, host, tag, message), read as the exporter reads a stats line."""
    parts = line.split(" ", 3)
    assert len(parts) == 4, f"the exporter wants four columns: {line!r}"
    body = parts[3]
    assert not any(t in body for t in OTHER_TYPES), f"taken for another type: {body}"
    assert "mmkubernetes" in body, f"an unknown stats line to the exporter: {body}"
    stat = json.loads(body)
    url = re.search(r"mmkubernetes\((\S+)\)", stat["name"])
    assert url is not None
    return {f'{EXPORTED[k]}{{url="{url.group(1)}"}}': int(stat.get(k, 0)) for k in EXPORTED}


def test_rsyslog_exporter_reads_the_nodes_counters_as_mmkubernetes(
        tmp_path: Path, emulator: ApiEmulator, token_file: Path) -> None:
    emulator.world.apply(make_namespace("shop"))
    emulator.world.apply(make_pod("shop", "web-1", {"app": "web"}))
    stats, exported = tmp_path / "stats.json", tmp_path / "exporter-input.log"
    cfg = kubemeta_config(tmp_path, emulator, token_file, node_name="node-1",
                          watch_start_jitter=0, stats_file=str(stats), stats_interval=0.2,
                          lookup_deadline=5)
    example = (SHIPPED / EXAMPLE).read_text()
    example = example.replace('module(load="imfile")\n', "")  # the docker snippet loads it
    example = example.replace("/var/log/kubemeta/stats.json", str(stats))
    # The site's impstats ruleset, whose omprog action runs the exporter: its lines
    # in omprog's default template.
    site = (f'ruleset(name="process_stats") {{\n'
            f'    action(type="omfile" file="{exported}" template="RSYSLOG_FileFormat")\n}}\n')
    body = shipped_snippet(tmp_path, cfg, name=DOCKER) + site + example
    log = container_log(tmp_path, "shop", "web-1", "app")
    with Rsyslog(tmp_path, body) as rs:
        write_lines(log, [docker_line(f"line {i}") for i in range(40)])
        rs.wait_records(40)
        deadline = time.monotonic() + 60
        while True:
            lines = exported.read_text().splitlines() if exported.exists() else []
            metrics = exporter_metrics(lines[-1]) if lines else {}
            if metrics.get(f'rsyslog_kubernetes_record_seen_total{{url="{emulator.url}"}}') \
                    == 40:
                break
            assert time.monotonic() < deadline, f"the exporter would see {metrics}"
            time.sleep(0.05)
    for line in lines:
        exporter_metrics(line)  # every line the exporter gets is one it knows
    # The helpers' own lines are in the stats file, and were left out.
    assert any(json.loads(x)["name"].startswith("kubemeta(")
               for x in stats.read_text().splitlines())
