"""Send bulk requests until every document is indexed, a duplicate, or dead-lettered.

Per-item handling (outcome.py) decides: 201/409 done, 429/5xx retried with exponential backoff and
jitter (only those items), other 4xx dead-lettered: a per-item refusal is about that document.

A whole request that fails is not the documents' fault, so it never dead-letters them: connection
refused or reset, timeouts, 429/5xx (the server is busy or down) and 401/403/404 and other 4xx
(credentials, a wrong proxy path: configuration) are all retried without limit, with backoff, while
the stop event is clear. Meanwhile nothing is acknowledged, the tailer's in-flight bound fills up
and reading pauses, so memory stays bounded; the problem is logged (rate-limited) and shows in
``/health``. Two request-level answers can be about documents, and only those split the request:
413 (too large: halves, down to a document too large on its own) and a 400 that half of the same
body does not get. Elasticsearch answers a whole-request 400 when it cannot read the bulk body
(every source line is parsed per item, so a bad document gets an item-level 400); when half of the
body is accepted and the other half refused, the refused half holds the culprit and is narrowed
down to single documents; when neither half is accepted it is the request, and nothing is blamed.

If the dead-letter file cannot be written (disk full), the refused documents stay unacknowledged
and the write is retried with backoff: never dropped, never written twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..throttle import Throttled
from .deadletter import DeadLetterError, DeadLetterFile
from .encode import Item
from .outcome import classify

log = logging.getLogger(__name__)

#: Reasons a record is shipped flagged instead of parsed (``ParseContext.problems`` keys).
FLAG_REASONS = ("json_too_deep", "parser_error", "encode_error", "record_error", "worker_crash")


@dataclass
class SinkStats:
    """Counters for metrics and for the end-of-run accounting, plus the current request-level
    problem. Plain values only: workers send it to the main process as JSON."""

    indexed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried_items: int = 0
    bulk_requests: int = 0
    failed_requests: int = 0
    #: Whole requests refused with a 4xx (credentials, wrong path...): retried, never dead-lettered.
    refused_requests: int = 0
    bytes_sent: int = 0
    last_success: float = 0.0  # wall clock of the last bulk request that got a response
    #: Wall clock of the first whole-request failure since the last answered request (0: none).
    failing_since: float = 0.0
    #: 1 when the latest of those failures was a refusal (4xx): retrying alone will not fix it.
    failing_refused: int = 0
    failing_reason: str = ""
    #: Why the dead-letter file cannot be written right now ("" when it can).
    dead_letter_error: str = ""
    #: Records shipped flagged instead of parsed, by reason (see FLAG_REASONS).
    flagged_json_too_deep: int = 0
    flagged_parser_error: int = 0
    flagged_encode_error: int = 0
    flagged_record_error: int = 0
    flagged_worker_crash: int = 0

    def add_problems(self, problems: Mapping[str, int]) -> None:
        for reason, n in problems.items():
            name = f"flagged_{reason}"
            if hasattr(self, name):
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def merged(cls, parts: Iterable[Mapping[str, Any]]) -> SinkStats:
        """Sum the counters of several senders (worker processes); the current problem is the
        oldest one still going on."""
        total = cls()
        names = [f.name for f in fields(cls)]
        for part in parts:
            for name in names:
                value = part.get(name)
                if value is None or name in ("failing_refused", "failing_reason"):
                    continue
                if name == "last_success":
                    total.last_success = max(total.last_success, value)
                elif name == "failing_since":
                    if value and (not total.failing_since or value < total.failing_since):
                        total.failing_since = value
                        total.failing_refused = int(part.get("failing_refused", 0))
                        total.failing_reason = str(part.get("failing_reason", ""))
                elif name == "dead_letter_error":
                    total.dead_letter_error = total.dead_letter_error or str(value)
                else:
                    setattr(total, name, getattr(total, name) + value)
        return total


class RequestFailed(Exception):
    """The whole request failed. ``retry``: a transient failure (connection, timeout, 429, 5xx);
    otherwise the server refused the request (4xx), which is about the request or the
    configuration; the sender decides what to do (see the module docstring)."""

    def __init__(self, status: int | None, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.status, self.reason, self.retry = status, reason, retry


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def api_error_reason(status: int | None, body: Any, message: str) -> str:
    """``HTTP 404: index_not_found_exception: no such index [x]``: the server's own words, short."""
    text = message
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            text = f"{error.get('type')}: {error.get('reason')}"
        else:
            text = str(body if error is None else error)
    elif isinstance(body, bytes):
        text = body.decode("utf-8", "replace")
    elif isinstance(body, str) and body:
        text = body
    return f"HTTP {status}: {_one_line(text)}"


try:  # ISA-L: byte-compatible gzip, six times cheaper than zlib at the same ratio
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - platforms without isal wheels
    _deflate = zlib  # type: ignore[misc]


def gzip_body(body: bytes) -> bytes:
    co = _deflate.compressobj(1, _deflate.DEFLATED, 31)  # wbits 31: gzip framing
    return bytes(co.compress(body) + co.flush())


class EsTransport:
    """One POST /_bulk through the official client; maps client errors to RequestFailed."""

    def __init__(self, client: Any, compress: bool) -> None:
        self.compress = compress
        headers = {"content-type": "application/x-ndjson"}
        if compress:
            headers["content-encoding"] = "gzip"
        self.client = client.options(headers=headers)

    def __call__(self, body: bytes) -> tuple[Any, int]:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout, TransportError
        from elasticsearch import ApiError

        payload = gzip_body(body) if self.compress else body
        try:
            # Only what classify() reads: the response shrinks to a status (and error) per item.
            resp = self.client.bulk(operations=payload, filter_path="errors,items.*.status,items.*.error")
        except ApiError as exc:
            status = exc.meta.status if exc.meta is not None else None
            retry = status is None or status in (408, 429) or status >= 500
            raise RequestFailed(status, api_error_reason(status, exc.body, str(exc.message)), retry) from None
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise RequestFailed(None, _one_line(f"{type(exc).__name__}: {exc.message}"), True) from None
        except TransportError as exc:
            raise RequestFailed(None, _one_line(f"{type(exc).__name__}: {exc}"), True) from None
        return resp.body, len(payload)


class _Stopped(Exception):
    """The stop event ended a retry loop: unwind, leaving what is unresolved unacknowledged."""


ACCEPTED, REFUSED = "accepted", "refused"
#: Longest wait between two calls of ``while_waiting`` during a backoff.
WAIT_SLICE = 0.5
#: Levels of halving (2 + 4 + 8 requests) tried before a whole-request 400 counts as the request's.
ISOLATION_DEPTH = 2


class BulkSender:
    def __init__(
        self,
        transport: Callable[[bytes], tuple[Any, int]],
        dead_letter: DeadLetterFile,
        on_resolved: Callable[[list[Item]], None],
        stop: threading.Event,
        initial_backoff: float = 0.25,
        max_backoff: float = 30.0,
        stats: SinkStats | None = None,
        while_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.transport = transport
        #: Called at least every WAIT_SLICE seconds while a retry waits (the tailer keeps
        #: following its files during an outage); runs in the thread that called send().
        self.while_waiting = while_waiting
        self.dead_letter = dead_letter
        self.on_resolved = on_resolved
        self.stop = stop
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stats = stats or SinkStats()
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self._request_log = Throttled(log)
        self._dead_letter_log = Throttled(log)

    def _backoff(self, attempt: int) -> None:
        """Sleep before retry ``attempt`` (exponential, equal jitter); raise _Stopped if stopping."""
        delay = min(self.max_backoff, self.initial_backoff * (2 ** min(attempt, 20)))
        until = time.monotonic() + delay / 2 + self._rng.uniform(0, delay / 2)
        while True:
            left = until - time.monotonic()
            if self.stop.wait(max(0.0, min(left, WAIT_SLICE))):
                raise _Stopped
            if self.while_waiting is not None:
                try:
                    self.while_waiting()
                except Exception:  # a bug there must not stop the retries
                    log.exception("error while waiting to retry")
            if left <= WAIT_SLICE:
                return

    def send(self, items: list[Item]) -> bool:
        """True when every item is resolved; False if the stop event ended the retries first
        (the unresolved items are then simply not acknowledged and will be read again)."""
        try:
            self._send(items)
        except _Stopped:
            return False
        return True

    def _send(self, items: list[Item]) -> None:
        pending = items
        attempt = 0
        while pending:
            try:
                pending = self._request(pending)
            except RequestFailed as failure:
                if failure.status == 413:
                    self._split_oversized(pending, failure)
                    return
                if failure.status == 400 and len(pending) > 1 and self._isolate(pending):
                    return
                self._failed(failure)
                self._backoff(attempt)
                attempt += 1
                continue
            if pending:
                self.stats.retried_items += len(pending)
                self._backoff(attempt)
                attempt += 1

    def _request(self, pending: list[Item]) -> list[Item]:
        """One bulk request: resolve what is done (indexed, duplicate, dead-lettered) and return
        the items to retry. Raises RequestFailed for a whole-request failure."""
        response, wire_bytes = self.transport(b"".join([i.body for i in pending]))
        stats = self.stats
        stats.bulk_requests += 1
        stats.bytes_sent += wire_bytes
        stats.last_success = time.time()
        if stats.failing_since:
            stats.failing_since, stats.failing_refused, stats.failing_reason = 0.0, 0, ""
            self._request_log.resolved("bulk requests succeed again")
        result = classify(response, len(pending))
        stats.indexed += len(result.indexed)
        stats.duplicates += len(result.duplicates)
        if not result.dead and not result.retry:
            self.on_resolved(pending)
            return []
        done = [pending[pos] for pos in result.indexed] + [pending[pos] for pos in result.duplicates]
        if done:
            self.on_resolved(done)
        if result.dead:
            self._dead_letter(
                [
                    (pending[pos], status, error, "refused by Elasticsearch")
                    for pos, status, error in result.dead
                ]
            )
        return [pending[pos] for pos in result.retry]

    def _failed(self, failure: RequestFailed) -> None:
        stats = self.stats
        stats.failed_requests += 1
        refused = not failure.retry
        if refused:
            stats.refused_requests += 1
        if not stats.failing_since:
            stats.failing_since = time.time()
        stats.failing_refused, stats.failing_reason = int(refused), failure.reason
        if refused:
            self._request_log.problem(
                logging.ERROR,
                "Elasticsearch refuses the bulk requests; retrying, nothing is dead-lettered for "
                "this (check the URL, the proxy path and the credentials)",
                reason=failure.reason,
            )
        else:
            self._request_log.problem(logging.WARNING, "bulk request failed, retrying", reason=failure.reason)

    def _dead_letter(self, entries: list[tuple[Item, int, Any, str]]) -> None:
        """Write refused documents, then resolve them. A failed write (disk full) is retried with
        backoff; the file is left as it was before the write, so nothing is written twice."""
        attempt = 0
        while True:
            try:
                self.stats.dead_lettered += self.dead_letter.write(entries)
            except DeadLetterError as exc:
                self.stats.dead_letter_error = str(exc)
                self._dead_letter_log.problem(
                    logging.ERROR,
                    "cannot write the dead-letter file; the refused documents stay unacknowledged",
                    reason=str(exc),
                )
                self._backoff(attempt)
                attempt += 1
                continue
            if self.stats.dead_letter_error:
                self.stats.dead_letter_error = ""
                self._dead_letter_log.resolved("the dead-letter file can be written again")
            self.on_resolved([entry[0] for entry in entries])
            return

    def _split_oversized(self, pending: list[Item], failure: RequestFailed) -> None:
        """413: halves until a request fits; a document too large on its own is dead-lettered."""
        self.stats.failed_requests += 1
        if len(pending) == 1:
            self._dead_letter([(pending[0], 413, None, f"request too large: {failure.reason}")])
            return
        half = len(pending) // 2
        self._send(pending[:half])
        self._send(pending[half:])

    def _probe(self, items: list[Item]) -> str:
        """Send ``items`` on their own: REFUSED if the request gets a 400, else ACCEPTED once
        every item is resolved (retrying as usual)."""
        try:
            rest = self._request(items)
        except RequestFailed as failure:
            if failure.status == 400:
                self.stats.failed_requests += 1
                return REFUSED
            self._send(items)  # another kind of failure: the normal retry loop
            return ACCEPTED
        if rest:
            self._send(rest)
        return ACCEPTED

    def _isolate(self, items: list[Item], depth: int = 0) -> bool:
        """A 400 for the whole request: is a document to blame? Send each half on its own. True if
        some part was accepted (so the request itself is fine and the refused parts are narrowed
        down to their documents); False if nothing was, within ``ISOLATION_DEPTH`` levels: then it
        is the request or the server, nothing is dead-lettered and the whole is retried later."""
        half = len(items) // 2
        parts = (items[:half], items[half:])
        outcomes = [self._probe(part) for part in parts]
        if ACCEPTED in outcomes:
            for part, outcome in zip(parts, outcomes, strict=True):
                if outcome == REFUSED:
                    self._blame(part)
            return True
        if depth >= ISOLATION_DEPTH:
            return False
        # Neither half: bad documents may sit in both. Look one level deeper, a few requests more.
        settled = [len(part) > 1 and self._isolate(part, depth + 1) for part in parts]
        if not any(settled):
            return False
        for part, done in zip(parts, settled, strict=True):
            if not done:
                self._blame(part)
        return True

    def _blame(self, items: list[Item]) -> None:
        """Other documents of the same request were accepted, so a 400 for these is theirs:
        narrow it down to single documents and dead-letter those."""
        if len(items) == 1:
            self._dead_letter(
                [(items[0], 400, None, "request refused with 400 while other documents were accepted")]
            )
            return
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            if self._probe(part) == REFUSED:
                self._blame(part)
