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

from kubemeta import text

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_STD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS}


class Redactor(logging.Filter):
    """No secret (see text.secret) leaves in a message or a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = text.redact(message)
        if clean is not message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = text.redact(record.exc_text)
            record.exc_info = None  # formatted, and redacted: handlers use exc_text
        return True


class JournalHandler(logging.Handler):
    """Sends each record with PRIORITY, KUBEMETA_EVENT and any other ``extra`` fields."""

    def __init__(self, send: Any) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {f"KUBEMETA_{k.upper()}": str(v) for k, v in _fields(record).items()}
            message = record.getMessage()
            if record.exc_text:  # a traceback, for a bug report
                message += "\n" + record.exc_text
            self._send(message, PRIORITY=str(_PRIORITY.get(record.levelno, 6)),
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
            _create_private(log_file)
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
    handler.addFilter(Redactor())
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


def _create_private(path: str) -> None:
    """The log file, mode 0640 (it names pods, paths and errors), never through a
    link another user planted. One kubemeta made earlier and left readable to
    all is tightened."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o640)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.getuid() and st.st_mode & 0o137:
            os.fchmod(fd, st.st_mode & 0o640)
    finally:
        os.close(fd)


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


def to_stderr(level: str) -> None:
    """For the commands a person runs (enrich): kubemeta's log on stderr."""
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("kubemeta: %(levelname)s %(message)s"))
    root = logging.getLogger("kubemeta")
    root.handlers = [h]
    root.setLevel(level.upper())
