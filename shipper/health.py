"""What ``/health`` says, for ``shipper run`` and ``shipper events``.

The command's own loop calls :meth:`HealthMonitor.observe` about once a second with what is in
flight and the sender's counters; ``/health`` evaluates the latest observation against the clock,
so a loop that stops observing cannot make the answer stale-but-fine (time keeps running).

- **unhealthy** (503): not started yet (e.g. Elasticsearch unreachable while the index mode is
  detected); Elasticsearch refuses the bulk requests (401/403/404...: configuration); the
  dead-letter file cannot be written; or records are in flight and no bulk request has succeeded
  for longer than ``metrics.unhealthy_after`` seconds, counted from when they became in flight if
  there never was a success.
- **degraded** (200): bulk requests are failing but not for long yet; or more than
  ``output.elasticsearch.dead_letter_alarm_ratio`` of the documents resolved over the last
  ``ALARM_WINDOW`` seconds were dead-lettered (a dead-letter storm: a mapping conflict, a bad
  namespace...), which is also logged once when it starts and when it ends.
- **ok** (200): everything else.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .sink.bulk import SinkStats

log = logging.getLogger(__name__)

#: Seconds over which the share of dead-lettered documents is measured.
ALARM_WINDOW = 60.0
#: Fewer documents resolved in the window than this never raise the alarm (one refused of two).
ALARM_MIN_DOCUMENTS = 20

OK, DEGRADED, UNHEALTHY, STARTING = "ok", "degraded", "unhealthy", "starting"


class HealthMonitor:
    def __init__(
        self,
        unhealthy_after: float,
        dead_letter_alarm_ratio: float,
        clock: Callable[[], float] = time.time,
        window: float = ALARM_WINDOW,
        min_documents: int = ALARM_MIN_DOCUMENTS,
    ) -> None:
        self.unhealthy_after = unhealthy_after
        self.alarm_ratio = dead_letter_alarm_ratio
        self.clock = clock
        self.window = window
        self.min_documents = min_documents
        self.running = False
        #: Why the command has not started yet (shown while not running).
        self.starting_problem = ""
        self.alarm = ""
        self._in_flight_since = 0.0
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, resolved, dead-lettered)
        self._last: tuple[int, SinkStats] = (0, SinkStats())

    def waiting(self, problem: str) -> None:
        """The command cannot start yet, and why (until :meth:`start`)."""
        self.starting_problem = problem

    def start(self) -> None:
        self.running = True
        self.starting_problem = ""

    def observe(self, in_flight: int, stats: SinkStats) -> None:
        """Called by the owner loop about once a second (one thread)."""
        now = self.clock()
        if in_flight <= 0:
            self._in_flight_since = 0.0
        elif not self._in_flight_since:
            self._in_flight_since = now
        resolved = stats.indexed + stats.duplicates + stats.dead_lettered
        samples = self._samples
        samples.append((now, resolved, stats.dead_lettered))
        while len(samples) > 1 and samples[1][0] <= now - self.window:
            samples.popleft()
        _, resolved_then, dead_then = samples[0]
        total, dead = resolved - resolved_then, stats.dead_lettered - dead_then
        storm = total >= self.min_documents and dead > self.alarm_ratio * total
        if storm and not self.alarm:
            self.alarm = (
                f"{dead} of {total} documents dead-lettered in the last {self.window:.0f} s "
                f"(alarm above {self.alarm_ratio:.0%})"
            )
            log.error(
                "dead-letter alarm: Elasticsearch refuses most documents (see the dead-letter file)",
                extra={"dead_lettered": dead, "resolved": total, "window_seconds": self.window},
            )
        elif not storm and self.alarm:
            self.alarm = ""
            log.info("dead-letter alarm over", extra={"dead_lettered": dead, "resolved": total})
        self._last = (in_flight, stats)

    def status(self) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)`` for ``/health``."""
        now = self.clock()
        in_flight, stats = self._last
        problems: list[str] = []
        state = OK
        if not self.running:
            state = STARTING
            problems.append(self.starting_problem or "starting")
        else:
            if stats.failing_refused:
                state = UNHEALTHY
                problems.append(f"Elasticsearch refuses the bulk requests: {stats.failing_reason}")
            if stats.dead_letter_error:
                state = UNHEALTHY
                problems.append(stats.dead_letter_error)
            since = max(stats.last_success, self._in_flight_since)
            if in_flight > 0 and since and now - since > self.unhealthy_after:
                state = UNHEALTHY
                what = "since they were read" if not stats.last_success else "for"
                problems.append(
                    f"{in_flight} records in flight and no successful bulk request {what} "
                    f"{now - since:.0f} s"
                    + (f" (last failure: {stats.failing_reason})" if stats.failing_reason else "")
                )
            elif stats.failing_since and not stats.failing_refused:
                state = state if state == UNHEALTHY else DEGRADED
                problems.append(
                    f"bulk requests failing for {now - stats.failing_since:.0f} s: {stats.failing_reason}"
                )
            if self.alarm:
                state = state if state == UNHEALTHY else DEGRADED
                problems.append(self.alarm)
        body: dict[str, Any] = {
            "status": state,
            "problems": problems,
            "records_in_flight": in_flight,
            "last_successful_bulk": stats.last_success or None,
            "documents_indexed": stats.indexed,
            "documents_dead_lettered": stats.dead_lettered,
        }
        return (200 if state in (OK, DEGRADED) else 503), body
