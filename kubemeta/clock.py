"""The one clock: every part that reads time or sleeps is handed one.

``clock()`` is monotonic seconds, for deadlines, TTLs and backoff; ``wall()``
is the epoch, only for what outlives the process (a snapshot's age);
``sleep`` pauses the calling thread. Tests hand a FakeClock (tests/fakes.py)
and move it by hand, so no rule depends on how fast a machine is.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Monotonic seconds."""

    def wall(self) -> float:
        """Seconds since the epoch."""

    def sleep(self, seconds: float) -> None:
        """Pause the calling thread."""


class SystemClock:
    """The machine's clocks."""

    __slots__ = ()

    def __call__(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM = SystemClock()
