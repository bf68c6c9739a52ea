"""Command line: ``kubemeta mmexternal | omprog | enrich | check | serve | status |
--version``.

In the helper modes stdout is rsyslog's pipe (replies for mmexternal, status
words for omprog) and stderr is the same pipe or rsyslog's: only answers are
ever written there. The other commands talk to a human and may print.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from kubemeta import __version__, config, configfile
from kubemeta.confighelp import HELP
from kubemeta.errors import ConfigError
from kubemeta.shell import logsink
from kubemeta.text import clip

log = logging.getLogger("kubemeta")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubemeta",
        description="Kubernetes metadata for container log records, for rsyslog.")
    p.add_argument("--version", action="store_true",
                   help="print the versions of kubemeta, Python and each dependency")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    helpers = {
        "mmexternal": "run as rsyslog's mmexternal helper (interface.input=\"fulljson\")",
        "omprog": "run as rsyslog's omprog helper (confirmMessages=\"on\"), writing enriched "
                  "lines to the configured sink",
        "enrich": "enrich fulljson lines from a file or stdin, print one reply per line",
        "check": "validate the config, contact the API, try the reads kubemeta needs",
        "serve": "run as table mode's node daemon: keep rsyslog's lookup table of pod "
                 "metadata, and lead this node's helpers",
        "status": "the node's health, from its leading helper: exit 0 healthy, 1 degraded, "
                  "2 config error, 3 unknown (no helper answered)",
    }
    for name, text in helpers.items():
        sp = sub.add_parser(name, help=text, description=text)
        sp.add_argument("--config", metavar="PATH", help="YAML configuration file")
        if name == "enrich":
            sp.add_argument("input", nargs="?", default="-", help="file of lines (- for stdin)")
            sp.add_argument("--raw", metavar="FILE_NAME",
                            help="the lines are a container log file's own (docker json-file "
                                 "or CRI), from the file of this name (/var/log/containers/"
                                 "...); print each record's $! as rsyslog would write it")
            sp.add_argument("--explain", action="store_true",
                            help="say on stderr, line by line, which pod the record named "
                                 "and where its metadata came from")
        if name == "check":
            sp.add_argument("--config-only", action="store_true",
                            help="only validate the config: no API, no files written "
                                 "(for Puppet's validate_cmd and other config tools)")
            sp.add_argument("--print-config", action="store_true",
                            help="print the effective config (file, flags and defaults) as "
                                 "YAML, secrets redacted, and stop")
            sp.add_argument("--json", action="store_true",
                            help="print the results as one JSON document, for tools")
            sp.add_argument("--user", metavar="NAME",
                            help="also try to read each file the config names as this user "
                                 "(the one rsyslog runs helpers as; needs root)")
            sp.add_argument("--timeout", metavar="SECONDS", type=float, default=15.0,
                            help="the deadline for all of the API checks together "
                                 "(default: %(default)s)")
        if name == "status":
            sp.add_argument("--json", action="store_true",
                            help="print the leader's report as JSON, for tools")
            sp.add_argument("--timeout", metavar="SECONDS", type=float, default=5.0,
                            help="how long to wait for the leader (default: %(default)s)")
        group = sp.add_argument_group(
            "settings (each overrides its key in the config file; values other than "
            "strings are read as YAML: true, 5, 0.25, [a, b])")
        for key, default in config.defaults().items():
            group.add_argument(f"--{key.replace('_', '-')}", dest=f"set_{key}", metavar="VALUE",
                               help=f"{HELP[key]} (default: {_shown(default)})".replace(
                                   "%", "%%"))
    return p


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        default = list(default)
    text = "none" if default is None else str(default).lower() if isinstance(
        default, bool) else str(default)
    return text if len(text) <= 60 else "see kubemeta check --print-config"


def _overrides(ns: argparse.Namespace, problems: list[str] | None = None) -> dict[str, Any]:
    """The settings given as flags. A flag that cannot be parsed raises, or with
    ``problems`` is left out and said there."""
    out: dict[str, Any] = {}
    for key in config.field_names():
        text = getattr(ns, f"set_{key}", None)
        if text is not None:
            try:
                out[key] = config.parse_flag_value(key, text)
            except ConfigError as e:
                if problems is None:
                    raise
                problems.append(str(e))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command not in ("mmexternal", "omprog"):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.version:
        from kubemeta import internal

        print(f"kubemeta {__version__}")
        for name, version in internal.versions().items():
            if name != "kubemeta":
                print(f"  {name} {version}")
        return 0
    if args.command in ("mmexternal", "omprog"):
        # A helper's fd 2 is rsyslog's pipe: a typo in its binary= line is a
        # config problem (logged, the rest of the line applies), not a usage text.
        return _helper(args, args.command, unknown)
    if args.command == "enrich":
        return _exit(_enrich(args))
    if args.command == "check":
        return _exit(_check(args))
    if args.command == "status":
        from kubemeta import statuscmd

        try:
            overrides = _overrides(args)
        except ConfigError as e:
            print(f"kubemeta status: {e}")
            return 2
        return _exit(statuscmd.run(args.config, overrides, as_json=args.json,
                                   timeout=args.timeout))
    if args.command == "serve":
        from kubemeta.serve import serve

        try:
            overrides = _overrides(args)
        except ConfigError as e:
            print(f"kubemeta: {e}", file=sys.stderr)
            return 2
        return _exit(serve(args.config, overrides))
    _parser().print_help()
    return 2


def _exit(code: int) -> int:
    """End the process without waiting for daemon threads. A lookup thread may be
    inside OpenSSL (loading CAs, a handshake) while the interpreter tears OpenSSL
    down, and crash the process after its answers are out."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _helper(args: argparse.Namespace, mode: str, unknown: Sequence[str] = ()) -> int:
    from kubemeta.app import App
    from kubemeta.kinds import Role
    from kubemeta.shell.pipeserver import OmprogResponder, PipeServer
    from kubemeta.wire.framing import LineFramer

    flag_problems = [f"unrecognized arguments: {' '.join(unknown)} (ignored; see kubemeta "
                     f"{mode} --help)"] if unknown else []
    loaded = configfile.load_lenient(args.config, _overrides(args, flag_problems))
    cfg = loaded.config
    problems = [*flag_problems, *loaded.problems]
    logsink.setup(cfg.log_file, cfg.log_level, helper=True)
    framer = LineFramer(cfg.max_line_bytes)
    app = App(cfg)
    if mode == "omprog" and cfg.sink is None:
        # Nowhere safe to write: refuse, and rsyslog keeps the records in its
        # queue and restarts us later.
        problems.append("sink: omprog mode needs a sink (file:/path, unix:/path or "
                        "tcp:host:port) to write enriched lines to")
        log.critical("configuration error: %s; refusing records until the config is fixed "
                     "(rsyslog keeps them and retries)", "; ".join(problems),
                     extra={"event": "config_error", "config": args.config})
        refusal = f"Error: kubemeta configuration: {clip(problems[-1])}"
        server = PipeServer(lambda frame: refusal.encode() + b"\n", framer,
                            greeting=refusal.encode() + b"\n")
        server.install_signals()
        server.serve()
        logging.shutdown()
        os._exit(0)
    _say_config(args.config, loaded, problems)
    from kubemeta import roles

    app.config_problems = tuple(problems)
    helper = roles.start(app)
    store = helper.store
    name = f"kubemeta({cfg.kubernetes_url})"
    if helper.role is not Role.ALONE:
        name += f"[{os.getpid()}]"  # one line per helper of the node
    stats = app.stats_writer(helper, name, len(problems))
    stats.start(store.stopped)
    enricher = app.enricher(store, shared=helper.shared)
    if mode == "omprog":
        writer = app.sink_writer()
        server = PipeServer(OmprogResponder(enricher, writer), framer,
                            greeting=b"OK\n", on_hup=writer.request_reopen)
        where = f"; sink {writer.sink}"
    else:
        server = PipeServer(enricher.reply, framer, busy_poll=cfg.busy_poll, half_duplex=True,
                            on_abandoned=enricher.hurry)
        where = ""
    server.install_signals()
    if helper.role is not Role.ALONE:
        where += f"; {helper.role} of this node's helpers"
    log.info("kubemeta %s started as %s helper; API %s%s", __version__, mode,
             cfg.kubernetes_url, where, extra={"event": "start"})
    why = server.serve()
    log.info("stopping (%s) after %d lines (%d replies rsyslog had stopped waiting for)",
             why, server.lines, server.abandoned, extra={"event": "stop"})
    stats.write()  # the last counters, for whoever reads them after us
    if helper.keeper is not None and helper.leads():
        helper.keeper.save()
    logging.shutdown()
    # Lookup threads may sit in a hung request; they hold nothing worth waiting for.
    os._exit(0)


def _say_config(path: str | None, loaded: configfile.Loaded, problems: list[str]) -> None:
    """Once, at start: what is wrong with the config and what runs instead; or,
    with a clean file, remember it for a later broken one."""
    if problems:
        log.critical("configuration error: %s; kubemeta goes on with %s until the config is "
                     "fixed and rsyslog restarts it", "; ".join(problems), {
                         "valid values": "the file's valid values",
                         "last good": "the last config file that loaded cleanly",
                         "defaults": "the built-in defaults",
                         "file": "the file's values"}[loaded.origin],
                     extra={"event": "config_error", "config": path})
        return
    if path is not None:
        try:
            configfile.save_last_good(path, loaded.config)
        except (OSError, ConfigError) as e:
            log.debug("cannot keep the config as the last good one: %s", e)


def _enrich(args: argparse.Namespace) -> int:
    from kubemeta import replay

    try:
        overrides = _overrides(args)
    except ConfigError as e:
        print(f"kubemeta enrich: {e}", file=sys.stderr)
        return 2
    return replay.run(args.config, overrides, args.input, raw=args.raw, explain=args.explain,
                      deadline_given=args.set_lookup_deadline is not None)


def _check(args: argparse.Namespace) -> int:
    from kubemeta import checks

    try:
        overrides = _overrides(args)
    except ConfigError as e:
        print(f"FAIL config: {clip(str(e), 2000)}")
        return 2
    return checks.run(args.config, overrides, config_only=args.config_only,
                      print_config=args.print_config, as_json=args.json, user=args.user,
                      timeout=args.timeout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
