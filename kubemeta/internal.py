"""Internal errors: a bug in kubemeta or a library it cannot work with, never an outage.

An exception that is not one of kubemeta's own errors (a TypeError, an
AttributeError, an ImportError, a library answering in an unexpected shape) is
reported here: logged at CRITICAL once per place and type, with its traceback
and the versions of kubemeta, Python and each dependency, and counted
(``internalerrors``). The caller goes on; lines are answered with what is
known. Calling it "API unavailable" would send an operator after a healthy API.
"""

from __future__ import annotations

import functools
import logging
import platform
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any

from kubemeta import __version__
from kubemeta.text import clip

log = logging.getLogger("kubemeta.internal")

# Distribution names, as pip and Debian's packages register them.
DEPENDENCIES = ("kubernetes", "urllib3", "cachetools", "tenacity", "PyYAML", "orjson",
                "systemd-python")


@functools.cache
def versions() -> dict[str, str]:
    """kubemeta's, Python's and each dependency's version ("absent" if not installed)."""
    out = {"kubemeta": __version__, "Python": platform.python_version()}
    for name in DEPENDENCIES:  # importlib.metadata reads files: once per process
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
        except Exception:  # a broken installation's metadata: still report the rest
            out[name] = "unknown"
    return out


def versions_line() -> str:
    return ", ".join(f"{k} {v}" for k, v in versions().items())


class InternalErrors:
    """How many internal errors there were, and what the last one was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self.count = 0
        self.last: str | None = None

    def report(self, where: str, exc: BaseException) -> None:
        kind = type(exc).__name__
        text = clip(str(exc))
        with self._lock:
            self.count += 1
            self.last = f"{where}: {kind}: {text}"
            first = (where, kind) not in self._seen
            if first and len(self._seen) < 1000:
                self._seen.add((where, kind))
        if first:
            log.critical("internal error in %s: %s: %s. This is a bug in kubemeta or a library "
                         "it cannot work with, not an API outage; lines are answered with what "
                         "is known. Please report it with this message (%s)", where, kind, text,
                         versions_line(), exc_info=exc,
                         extra={"event": "internal_error", "where": where, "error": kind})
        else:
            log.debug("internal error in %s again: %s: %s", where, kind, text)


# One per process, like its log: every thread's internal errors count here.
ERRORS = InternalErrors()


def report(where: str, exc: BaseException) -> None:
    ERRORS.report(where, exc)


def supervise(where: str, step: Callable[[], object], stop: threading.Event, *,
              every: float = 0.0, wait_first: bool = False,
              until: Callable[[], bool] = lambda: False, pause: float = 1.0) -> None:
    """Run ``step`` until ``stop`` is set (or ``until()``), waiting ``every``
    seconds between runs: the loop of every background thread that must not die.
    An exception in ``step`` is an internal error: reported, then the loop goes
    on after ``pause`` (so a bug that fails at once does not spin a core). The
    waits are on ``stop``, so a stopping helper ends them at once."""
    if wait_first and stop.wait(every):
        return
    while not stop.is_set() and not until():
        try:
            step()
        except Exception as e:
            report(where, e)
            if stop.wait(pause):
                return
        if every > 0 and stop.wait(every):
            return


def spawn(name: str, where: str, step: Callable[[], object], stop: threading.Event,
          **kw: Any) -> threading.Thread:
    """``supervise`` in a daemon thread called ``name``."""
    t = threading.Thread(target=supervise, args=(where, step, stop), kwargs=kw, name=name,
                         daemon=True)
    t.start()
    return t
