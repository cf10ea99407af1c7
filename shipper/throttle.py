"""Log a recurring problem without flooding: the first occurrence at once, then at most one line per
interval saying how often it recurred, and one line when it is over.

Why: a sender retries an unreachable or refusing server for hours; one line per retry buries
everything else (and fills disks), no line at all hides the problem.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class Throttled:
    """One per kind of problem (``bulk``, ``dead_letter``...); not thread-safe (one owner each)."""

    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.interval, self.clock = logger, interval, clock
        self._since = 0.0  # when the current streak started (0: no problem)
        self._last_logged = 0.0
        self._last_message = ""
        self._suppressed = 0

    @property
    def active(self) -> bool:
        return self._since > 0

    def problem(self, level: int, message: str, **extra: Any) -> None:
        """Report one occurrence; logged if it is the first, a different message, or due."""
        now = self.clock()
        if not self._since:
            self._since = now
        if message != self._last_message or now - self._last_logged >= self.interval:
            if self._suppressed:
                extra["repeated"] = self._suppressed
            self.logger.log(level, message, extra=extra)
            self._last_logged, self._last_message, self._suppressed = now, message, 0
        else:
            self._suppressed += 1

    def resolved(self, message: str, **extra: Any) -> None:
        """The problem is over: one INFO line (only if there was a problem)."""
        if not self._since:
            return
        extra["lasted_seconds"] = round(self.clock() - self._since, 1)
        self.logger.info(message, extra=extra)
        self._since, self._last_message, self._suppressed = 0.0, "", 0
