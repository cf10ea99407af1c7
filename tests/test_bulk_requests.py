"""Whole-request failures never dead-letter documents; only 413 and a 400 that half of the same
body does not get narrow a request down. Fake transports, real BulkSender and dead-letter file."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shipper.health import HealthMonitor
from shipper.sink.bulk import BulkSender, RequestFailed, SinkStats, api_error_reason
from shipper.sink.deadletter import DeadLetterFile
from shipper.sink.encode import IndexNaming, Item, make_item


def item(n: int, marker: str = "") -> Item:
    doc = {"@timestamp": "2026-11-24T10:00:00.000Z", "message": f"doc {n} {marker}"}
    return make_item(IndexNaming("data_stream"), f"k-{n:x}", "logs-celery.worker-default", doc, n, None)


def ok(body: bytes) -> tuple[Any, int]:
    n = body.count(b"\n") // 2
    return {"errors": False, "items": [{"create": {"status": 201}}] * n}, len(body)


class Harness:
    def __init__(self, tmp: Path, transport: Any) -> None:
        self.path = tmp / "dead-letter.ndjson"
        self.resolved: list[int] = []
        self.stop = threading.Event()
        self.sender = BulkSender(
            transport,
            DeadLetterFile(str(self.path)),
            lambda items: self.resolved.extend(i.batch_seq for i in items),
            self.stop,
            0.01,
            0.05,
        )

    def dead(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []

    def send_in_background(self, items: list[Item]) -> threading.Event:
        done = threading.Event()
        threading.Thread(target=lambda: (self.sender.send(items), done.set()), daemon=True).start()
        return done


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, "<html>404 Not Found</html>"),
        (401, {"error": {"type": "security_exception", "reason": "missing authentication credentials"}}),
        (
            403,
            {
                "error": {
                    "type": "security_exception",
                    "reason": "action [indices:data/write/bulk] is unauthorized",
                }
            },
        ),
        (
            400,
            {
                "error": {
                    "type": "illegal_argument_exception",
                    "reason": "The bulk request must be terminated",
                }
            },
        ),
        (405, "Method Not Allowed"),
    ],
)
def test_a_refused_request_is_retried_never_dead_lettered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int, body: Any
) -> None:
    refusing = [True]
    calls: list[int] = []

    def transport(payload: bytes) -> tuple[Any, int]:
        calls.append(payload.count(b"\n") // 2)
        if refusing[0]:
            raise RequestFailed(status, api_error_reason(status, body, ""), retry=False)
        return ok(payload)

    h = Harness(tmp_path, transport)
    with caplog.at_level(logging.INFO, logger="shipper.sink.bulk"):
        done = h.send_in_background([item(n) for n in range(100)])
        time.sleep(0.5)
        assert not done.is_set() and h.resolved == [] and h.dead() == []
        stats = h.sender.stats
        assert stats.failing_refused == 1 and stats.refused_requests >= 3
        assert f"HTTP {status}" in stats.failing_reason
        refusing[0] = False
        assert done.wait(5)
    assert sorted(h.resolved) == list(range(100)) and h.dead() == []
    assert h.sender.stats.failing_since == 0.0 and h.sender.stats.indexed == 100
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # rate-limited: one line, not one per retry
    assert f"HTTP {status}" in errors[0].reason  # type: ignore[attr-defined]
    assert any(r.getMessage() == "bulk requests succeed again" for r in caplog.records)


def test_a_400_caused_by_one_document_dead_letters_only_that_one(tmp_path: Path) -> None:
    def transport(payload: bytes) -> tuple[Any, int]:
        if b"POISON" in payload:
            raise RequestFailed(400, "HTTP 400: x_content_parse_exception: bad line", retry=False)
        return ok(payload)

    h = Harness(tmp_path, transport)
    items = [item(n, "POISON" if n == 37 else "") for n in range(100)]
    assert h.sender.send(items)
    assert sorted(h.resolved) == list(range(100))
    (dead,) = h.dead()
    assert dead["_id"] == "k-25" and dead["status"] == 400
    assert h.sender.stats.indexed == 99 and h.sender.stats.dead_lettered == 1


def test_two_bad_documents_in_both_halves_are_found(tmp_path: Path) -> None:
    def transport(payload: bytes) -> tuple[Any, int]:
        if b"POISON" in payload:
            raise RequestFailed(400, "HTTP 400: bad", retry=False)
        return ok(payload)

    h = Harness(tmp_path, transport)
    assert h.sender.send([item(n, "POISON" if n in (3, 70) else "") for n in range(100)])
    assert sorted(d["_id"] for d in h.dead()) == ["k-3", "k-46"]
    assert sorted(h.resolved) == list(range(100))


def test_a_400_for_every_request_is_the_request_not_the_documents(tmp_path: Path) -> None:
    refusing = [True]

    def transport(payload: bytes) -> tuple[Any, int]:
        if refusing[0]:
            raise RequestFailed(400, "HTTP 400: compressor detection failed", retry=False)
        return ok(payload)

    h = Harness(tmp_path, transport)
    done = h.send_in_background([item(n) for n in range(64)])
    time.sleep(0.5)
    assert h.dead() == [] and h.resolved == [] and h.sender.stats.failing_refused == 1
    refusing[0] = False
    assert done.wait(5)
    assert sorted(h.resolved) == list(range(64)) and h.dead() == []


def test_413_still_splits_and_dead_letters_only_what_is_too_large_alone(tmp_path: Path) -> None:
    def transport(payload: bytes) -> tuple[Any, int]:
        if len(payload) > 2000:
            raise RequestFailed(413, "HTTP 413: too large", retry=False)
        return ok(payload)

    h = Harness(tmp_path, transport)
    items = [item(n) for n in range(40)] + [item(99, "x" * 5000)]
    assert h.sender.send(items)
    assert [d["_id"] for d in h.dead()] == ["k-63"]
    assert sorted(h.resolved) == [*range(40), 99]


def test_transient_failures_log_a_warning_once_per_streak(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [5]

    def transport(payload: bytes) -> tuple[Any, int]:
        if failures[0]:
            failures[0] -= 1
            raise RequestFailed(None, "ConnectionError: refused", retry=True)
        return ok(payload)

    h = Harness(tmp_path, transport)
    with caplog.at_level(logging.WARNING, logger="shipper.sink.bulk"):
        assert h.sender.send([item(1)])
    assert len([r for r in caplog.records if r.getMessage() == "bulk request failed, retrying"]) == 1
    assert h.sender.stats.failed_requests == 5 and h.sender.stats.refused_requests == 0


def test_health_is_unhealthy_while_requests_are_refused_and_degraded_in_a_dead_letter_storm() -> None:
    now = [1000.0]
    monitor = HealthMonitor(unhealthy_after=60, dead_letter_alarm_ratio=0.5, clock=lambda: now[0])
    monitor.start()
    stats = SinkStats(failing_since=999.0, failing_refused=1, failing_reason="HTTP 404: not found")
    monitor.observe(10, stats)
    code, body = monitor.status()
    assert code == 503 and body["status"] == "unhealthy" and "HTTP 404" in body["problems"][0]
    # A storm: 90 of 100 documents resolved in the window were dead-lettered.
    monitor.observe(0, SinkStats(last_success=1000.0))
    now[0] += 1
    monitor.observe(0, SinkStats(indexed=10, dead_lettered=90, last_success=1001.0))
    code, body = monitor.status()
    assert code == 200 and body["status"] == "degraded" and "90 of 100" in body["problems"][0]
    now[0] += 61  # the window moves on: 10 more documents, all indexed
    monitor.observe(0, SinkStats(indexed=20, dead_lettered=90, last_success=1062.0))
    assert monitor.status()[1]["status"] == "ok"


def test_health_counts_never_as_no_success() -> None:
    now = [1000.0]
    monitor = HealthMonitor(unhealthy_after=2, dead_letter_alarm_ratio=0.5, clock=lambda: now[0])
    assert monitor.status()[0] == 503  # not started
    monitor.waiting("Elasticsearch unreachable: connection refused")
    assert "unreachable" in monitor.status()[1]["problems"][0]
    monitor.start()
    monitor.observe(0, SinkStats())
    assert monitor.status()[0] == 200  # nothing to ship
    monitor.observe(50, SinkStats(failing_since=1000.0, failing_reason="ConnectionError"))
    assert monitor.status()[1]["status"] == "degraded"
    now[0] += 3
    code, body = monitor.status()
    assert code == 503 and "50 records in flight" in body["problems"][0]


def test_while_a_retry_waits_the_waiting_hook_runs_often_and_a_failing_hook_does_not_stop_it(
    tmp_path: Path,
) -> None:
    """The tailer keeps following its files during an outage through ``while_waiting``: it must
    run at least every WAIT_SLICE during a long backoff, in the sending thread, and an error in
    it must not end the retries."""
    from shipper.sink.bulk import WAIT_SLICE

    failures = [6]

    def transport(payload: bytes) -> tuple[Any, int]:
        if failures[0]:
            failures[0] -= 1
            raise RequestFailed(503, "HTTP 503", retry=True)
        return ok(payload)

    calls: list[float] = []

    def hook() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("a bug in the hook")

    resolved: list[int] = []
    sender = BulkSender(
        transport,
        DeadLetterFile(str(tmp_path / "dl.ndjson")),
        lambda items: resolved.extend(i.batch_seq for i in items),
        threading.Event(),
        0.4,
        2.0,
        while_waiting=hook,
    )
    start = time.monotonic()
    assert sender.send([item(n) for n in range(3)])
    elapsed = time.monotonic() - start
    assert sorted(resolved) == [0, 1, 2]
    assert len(calls) >= 6 and len(calls) >= elapsed / WAIT_SLICE - 1
    gaps = [b - a for a, b in zip([start, *calls], calls, strict=False)]
    assert max(gaps) < WAIT_SLICE + 0.3
