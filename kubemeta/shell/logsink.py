"""kubemeta's own log: the journal with structured fields, else a log file.

Under rsyslog the helper's stderr is the same pipe as its replies, so at start
fd 2 is pointed at the log file (or /dev/null): a warning, a traceback or a
library's stray print can never put the pipe out of step.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_STD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS}


class JournalHandler(logging.Handler):
    """Sends each record with PRIORITY, KUBEMETA_EVENT and any other ``extra`` fields."""

    def __init__(self, send: Any) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {f"KUBEMETA_{k.upper()}": str(v) for k, v in _fields(record).items()}
            self._send(record.getMessage(), PRIORITY=str(_PRIORITY.get(record.levelno, 6)),
                       SYSLOG_IDENTIFIER="kubemeta", CODE_FILE=record.pathname,
                       CODE_LINE=str(record.lineno), CODE_FUNC=record.funcName, **fields)
        except Exception:
            self.handleError(record)


class FieldsFormatter(logging.Formatter):
    """``time kubemeta[pid]: LEVEL message key=value ...`` for the log file."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s kubemeta[%(process)d]: %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = _fields(record)
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in sorted(extra.items()))
        return text


def _journal_send() -> Any:
    if not os.path.exists(JOURNAL_SOCKET):
        return None
    try:
        from systemd import journal
    except ImportError:
        return None
    return journal.send


def setup(log_file: str | None, level: str = "info", *, helper: bool = True,
          journal: bool = True) -> str:
    """Configure the ``kubemeta`` logger; returns where it logs, for `check` to tell.

    ``helper``: we run under rsyslog, so nothing may reach fds 1 and 2.
    """
    logging.raiseExceptions = False  # a failing handler must not print to stderr
    logging.lastResort = None
    root = logging.getLogger("kubemeta")
    root.handlers.clear()
    root.propagate = False
    root.setLevel(level.upper())
    where = "nowhere"
    handler: logging.Handler | None = None
    send = _journal_send() if journal else None
    file_fd: int | None = None
    if send is not None:
        handler = JournalHandler(send)
        where = "the journal"
    elif log_file:
        try:
            os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
            fh = logging.FileHandler(log_file, encoding="utf-8")
            fh.setFormatter(FieldsFormatter())
            handler = fh
            where = log_file
            if fh.stream is not None:
                file_fd = fh.stream.fileno()
        except OSError:
            handler = None
    if handler is None:
        handler = logging.NullHandler()
    root.addHandler(handler)
    logging.captureWarnings(True)
    pywarn = logging.getLogger("py.warnings")
    pywarn.handlers = [handler]
    pywarn.propagate = False
    for name in ("urllib3", "kubernetes"):
        lib = logging.getLogger(name)
        lib.handlers = [handler]
        lib.propagate = False
        lib.setLevel(logging.WARNING)
    if helper:
        _point_fd2_away(file_fd)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_uncaught
    return where


def _point_fd2_away(file_fd: int | None) -> None:
    target = file_fd
    devnull = None
    if target is None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        target = devnull
    os.dup2(target, 2)
    if devnull is not None:
        os.close(devnull)
    # Python-level writers to sys.stderr now land on the new fd 2 as well.
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115


def _log_uncaught(tp: type[BaseException], value: BaseException,
                  tb: types.TracebackType | None) -> None:
    logging.getLogger("kubemeta").critical("uncaught exception", exc_info=(tp, value, tb),
                                           extra={"event": "bug"})


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("kubemeta").critical(
        "uncaught exception in thread %s", args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback), extra={"event": "bug"})
