"""``kubemeta serve``: table mode's node daemon.

It is a helper without a pipe: it leads the node's helpers (or follows the one
that leads, and takes over when that one goes), with every source, the warm
start, tombstones and outage handling, and keeps rsyslog's lookup table in step
(shell.tablekeeper). The mmexternal helpers that rsyslog runs for table misses
follow it. Under systemd (Type=notify) it says READY once the first table is
written, and it stops on SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading

from kubemeta import __version__, configfile
from kubemeta.errors import ConfigError
from kubemeta.shell import logsink

log = logging.getLogger("kubemeta.serve")


def notify(state: bytes) -> None:
    """sd_notify: a datagram to $NOTIFY_SOCKET, when systemd gave one."""
    where = os.environ.get("NOTIFY_SOCKET")
    if not where:
        return
    address = "\0" + where[1:] if where.startswith("@") else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state, address)
    except OSError as e:
        log.warning("cannot tell systemd %r: %s", state, e, extra={"event": "sd_notify"})


def serve(path: str | None, overrides: dict[str, object]) -> int:
    from kubemeta import roles
    from kubemeta.app import App

    loaded = configfile.load_lenient(path, overrides)
    cfg = loaded.config
    logsink.setup(cfg.log_file, cfg.log_level)
    if loaded.problems:
        # A daemon that stopped would leave every line to the helpers: go on
        # with what was good, and say so.
        log.critical("configuration error: %s; serving with %s until the config is fixed "
                     "and the service restarted", "; ".join(loaded.problems), loaded.origin,
                     extra={"event": "config_error", "config": path})
    elif path is not None:
        with contextlib.suppress(OSError, ConfigError):
            configfile.save_last_good(path, cfg)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    app = App(cfg)
    app.config_problems = loaded.problems
    helper = roles.start(app)
    stats = app.stats_writer(helper, f"kubemeta({cfg.kubernetes_url})[serve]",
                             len(loaded.problems))
    stats.start(helper.store.stopped)
    keeper = app.table_keeper(helper)
    keeper.tick()  # the first table before READY: rsyslog may start right after us
    log.info("kubemeta %s serving the lookup table %s (%s of this node's helpers); API %s",
             __version__, cfg.table_file, helper.role, cfg.kubernetes_url,
             extra={"event": "start"})
    notify(b"READY=1")
    keeper.run(stop)
    notify(b"STOPPING=1")
    log.info("stopping (signal) after %d table writes", keeper.writes, extra={"event": "stop"})
    stats.write()
    if helper.keeper is not None and helper.leads():
        helper.keeper.save()
    logging.shutdown()
    return 0
