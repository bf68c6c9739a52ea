"""``kubemeta check``: is this node's kubemeta set up to work?

In order: the config (file:line for each problem), the files it names (each
readable, optionally as the user rsyslog runs helpers as), the log and
state_dir, then the reads the configured source needs, against the API. All of
it within one deadline, whatever the API does: a read still waiting at the
deadline is reported, and the rest skipped.

Exit codes: 0 all good (warnings allowed), 1 the API refused or failed a read,
2 a configuration problem (config, files, log, state_dir) or an internal error.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubemeta import configfile, text
from kubemeta.clock import SYSTEM
from kubemeta.config import SECRET_FIELDS, Config
from kubemeta.errors import ApiError, ConfigError
from kubemeta.shell import logsink

CONFIG, API = 2, 1  # exit codes


@dataclass
class Report:
    """What check found, in order; printed as it goes (or at the end, as JSON)."""

    as_json: bool = False
    results: list[dict[str, str]] = field(default_factory=list)
    code: int = 0

    def add(self, result: str, what: str, detail: str = "", code: int = 0) -> None:
        detail = text.clip(detail, 2000)
        self.results.append({"check": what, "result": result, "detail": detail})
        self.code = max(self.code, code)
        if not self.as_json:
            word = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}[result]
            sep = ": " if result in ("fail", "skip") and detail else " " if detail else ""
            print(f"{word} {what}{sep}{detail}", flush=True)

    def ok(self, what: str, detail: str = "") -> None:
        self.add("ok", what, detail)

    def warn(self, what: str, detail: str = "") -> None:
        self.add("warn", what, detail)

    def fail(self, what: str, detail: str, code: int) -> None:
        self.add("fail", what, detail, code)

    def finish(self) -> int:
        if self.as_json:
            print(json.dumps({"exit": self.code, "checks": self.results}, indent=2))
        return self.code


def run(path: str | None, overrides: Mapping[str, Any], *, config_only: bool = False,
        print_config: bool = False, as_json: bool = False, user: str | None = None,
        timeout: float = 15.0) -> int:
    report = Report(as_json)
    if path is None and os.path.exists(configfile.DEFAULT_PATH):
        path = configfile.DEFAULT_PATH  # what the shipped snippets run with
    try:
        cfg = configfile.load(path, overrides)
    except ConfigError as e:
        report.fail("config", str(e), CONFIG)
        return report.finish()
    report.ok(f"config {path or f'(built-in defaults: no {configfile.DEFAULT_PATH})'}")
    if print_config:
        print(effective_yaml(cfg), end="")
        return report.finish()
    if config_only:
        return report.finish()
    _files(cfg, report, user)
    _log_and_state(cfg, report)
    if not cfg.node_name:
        report.warn("node_name is not set", "every new pod costs API requests of its own "
                    "(source: get); set it to this node's name in Kubernetes to list and "
                    "watch the node's pods")
    if report.code == 0:
        _api(cfg, report, SYSTEM() + timeout, timeout)
    else:
        report.add("skip", "the API", "fix the configuration first")
    return report.finish()


def effective_yaml(cfg: Config) -> str:
    import yaml

    data = {k: (text.REDACTED if k in SECRET_FIELDS and v is not None else
                list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
    return str(yaml.safe_dump(data, sort_keys=False))


def _files(cfg: Config, report: Report, user: str | None) -> None:
    named = {"token_file": cfg.effective_token_file(), "ca_file": cfg.effective_ca_file(),
             "client_cert_file": cfg.client_cert_file, "client_key_file": cfg.client_key_file,
             "kubeconfig": cfg.kubeconfig}
    if cfg.effective_source() == "kubelet" and cfg.kubelet_ca_file:
        named["kubelet_ca_file"] = cfg.kubelet_ca_file
    paths = {k: p for k, p in named.items() if p}
    problems = {k: _unreadable(p) for k, p in paths.items()}
    who = ""
    if user:
        try:
            as_user = _unreadable_as(user, list(paths.values()))
            problems = {k: problems[k] or as_user.get(p) for k, p in paths.items()}
            who = f" as {user}"
        except (KeyError, OSError, PermissionError) as e:
            report.fail(f"files as user {user}", _why_not_as(user, e), CONFIG)
    for key, p in paths.items():
        if problems[key]:
            report.fail(f"{key} {p}", f"cannot read it{who}: {problems[key]}", CONFIG)
        else:
            report.ok(f"{key} {p} readable{who}")


def _unreadable(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        return e.strerror or str(e)
    return None


def _unreadable_as(user: str, paths: list[str]) -> dict[str, str | None]:
    """Each path's problem for ``user``, tried in a child that becomes that user
    (root only): permissions, ACLs and groups as the helper would meet them."""
    import pwd

    pw = pwd.getpwnam(user)
    if os.geteuid() != 0:
        raise PermissionError("only root can become another user")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            os.close(r)
            os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.write(w, json.dumps({p: _unreadable(p) for p in paths}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    out: dict[str, str | None] = json.loads(data) if data else {}
    return out


def _why_not_as(user: str, e: BaseException) -> str:
    if isinstance(e, KeyError):
        return f"no user {user} on this machine"
    return f"cannot check as another user: {e}"


def _log_and_state(cfg: Config, report: Report) -> None:
    if os.path.exists(logsink.JOURNAL_SOCKET):
        report.ok("log: the journal")
    else:
        try:
            os.makedirs(os.path.dirname(cfg.log_file) or ".", exist_ok=True)
            with open(cfg.log_file, "a", encoding="utf-8"):
                pass
            report.ok(f"log: {cfg.log_file}")
        except OSError as e:
            report.fail(f"log_file {cfg.log_file}", f"not writable ({e.strerror or e}); "
                        "kubemeta would log nowhere", CONFIG)
    try:
        os.makedirs(cfg.state_dir, mode=0o750, exist_ok=True)
        if not os.access(cfg.state_dir, os.W_OK):
            raise PermissionError(13, "Permission denied")
        report.ok(f"state_dir {cfg.state_dir}")
    except OSError as e:
        report.fail(f"state_dir {cfg.state_dir}", f"not a writable directory "
                    f"({e.strerror or e}): no sharing between helpers, no warm start, "
                    "no table", CONFIG)


def _api(cfg: Config, report: Report, deadline: float, timeout: float) -> None:
    from kubemeta.app import App

    app = App(cfg)
    try:
        api = app.api()
    except ConfigError as e:
        report.fail("API client", str(e), CONFIG)
        return
    except Exception as e:
        internal_failure(report, "building the API client", e)
        return
    for warning in api.warnings:
        report.warn(warning)
    at = f"at {api.url}"
    node = cfg.node_name
    checks: list[tuple[str, Callable[[], str]]] = [
        (f"get namespace default {at}", lambda: _done(api.get_namespace("default"))),
        (f"get pods in namespace default {at}",
         lambda: _done(api.get_pod("default", "kubemeta-check"))),
    ]
    if cfg.effective_source() == "kubelet":
        checks.append((f"get pods from the kubelet at {cfg.kubelet_url}",
                       lambda: _done(list(app.api(kubelet=True).kubelet_pods()))))
    if cfg.effective_source() == "watch" and node:
        checks += [
            (f"list pods on node {node} {at}", lambda: _node_pods(api, node, report)),
            (f"list namespaces {at}", lambda: _done(list(api.list_namespaces()))),
            (f"watch pods on node {node} {at}", lambda: _done(list(api.watch_pods(node, "0", 1)))),
            (f"watch namespaces {at}", lambda: _done(list(api.watch_namespaces("0", 1)))),
        ]
        if "node_labels" in cfg.extra_fields:
            checks += [
                (f"list node {node} {at}", lambda: _node(api, node, report)),
                (f"watch node {node} {at}", lambda: _done(list(api.watch_node(node, "0", 1)))),
            ]
    for i, (what, call) in enumerate(checks):
        outcome = _within(call, deadline - SYSTEM())
        if outcome is None:
            report.fail(what, f"no answer within check's deadline of {timeout:g} s (--timeout)",
                        API)
            for later, _ in checks[i + 1:]:
                report.add("skip", later, "past the deadline")
            return
        kind, value = outcome
        if kind == "ok":
            report.ok(what, value)
        elif isinstance(value, ApiError) and value.status == 404:
            # A 404 proves the read is allowed: the object just is not there.
            report.ok(what, "(allowed; object not found)")
        elif isinstance(value, ApiError):
            report.fail(what, value.reason, API)
        elif isinstance(value, ConfigError):
            report.fail(what, str(value), CONFIG)
        else:
            internal_failure(report, what, value)
            return


def _done(_: object) -> str:
    return ""


def _node_pods(api: Any, node: str, report: Report) -> str:
    pods = list(api.list_pods(node))
    elsewhere = [p for p in pods if (p.get("spec") or {}).get("nodeName") not in (None, node)]
    if not pods:
        report.warn(f"0 pods on node {node}", "is node_name this node's name in Kubernetes "
                    "(kubectl get nodes)? Every pod would cost requests of its own")
    if elsewhere:
        report.warn(f"{len(elsewhere)} of the pods listed for node {node} run on another "
                    "node", "the API (or a proxy before it) ignores the field selector")
    return f"({len(pods)} pods)"


def _node(api: Any, node: str, report: Report) -> str:
    if not list(api.list_node(node)):
        report.warn(f"no node {node}", "is node_name this node's name in Kubernetes "
                    "(kubectl get nodes)? Its lines would have no node_labels")
    return ""


def _within(call: Callable[[], str], seconds: float) -> tuple[str, Any] | None:
    """Run ``call`` in a thread, for at most ``seconds``; None when it is still
    running then (the thread is left: the process ends without waiting for it)."""
    box: list[tuple[str, Any]] = []

    def target() -> None:
        try:
            box.append(("ok", call()))
        except Exception as e:
            box.append(("error", e))

    t = threading.Thread(target=target, name="kubemeta-check", daemon=True)
    t.start()
    t.join(max(0.0, seconds))
    return box[0] if box else None


def internal_failure(report: Report, what: str, e: BaseException) -> None:
    """Not the API's fault: exit 2, with what a bug report needs."""
    import traceback

    from kubemeta import internal

    report.fail(what, f"internal error {type(e).__name__}: {text.clip(str(e))}", CONFIG)
    if not report.as_json:
        print("     a bug in kubemeta or a library it cannot work with, not an API problem;")
        print(f"     please report it with: {internal.versions_line()}")
        print(text.redact("".join(traceback.format_exception(e))), end="")

