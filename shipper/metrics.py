"""Prometheus ``/metrics`` and ``/health`` for ``shipper run`` and ``shipper events``.

:class:`MetricsServer` is generic: a collector (read at scrape time: no global registry, no
counters updated on the hot path) and a health function. The collectors here read a pipeline
(``run``) or the events bridge (``events``). For ``run`` the counters add up: every record read is
indexed, a duplicate of one already indexed, dead-lettered, or still in flight.

The server is bounded: at most ``max_connections`` connections are served at once (one thread
each; more are closed at once) and a connection idle for ``timeout`` seconds is dropped, so a
thousand idle connections cost a handful of threads, not a thousand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .errors import ShipperError
from .sink.bulk import FLAG_REASONS, SinkStats

if TYPE_CHECKING:
    from .pipeline import Pipeline

Health = Callable[[], tuple[int, dict[str, Any]]]


class Collector(Protocol):
    def collect(self) -> Iterator[Any]: ...


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"shipper_{name}", doc, value=value)


def sink_metrics(s: SinkStats) -> Iterator[Any]:
    """What every bulk sender reports (run and events alike)."""
    yield _counter("documents_indexed", "Documents Elasticsearch created (201).", s.indexed)
    yield _counter(
        "documents_duplicate",
        "Documents already indexed (409 on create): re-sends after a restart.",
        s.duplicates,
    )
    yield _counter(
        "documents_dead_lettered",
        "Documents refused for good, written to the dead-letter file.",
        s.dead_lettered,
    )
    yield _counter("documents_retried", "Document retries after 429/5xx item failures.", s.retried_items)
    yield _counter("bulk_requests", "Bulk requests answered by Elasticsearch.", s.bulk_requests)
    yield _counter(
        "bulk_requests_failed",
        "Bulk requests that failed as a whole (connection, 429, 5xx, 4xx); all are retried.",
        s.failed_requests,
    )
    yield _counter(
        "bulk_requests_refused",
        "Bulk requests refused as a whole with a 4xx (credentials, wrong path): retried, not dead-lettered.",
        s.refused_requests,
    )
    yield _counter("bytes_sent", "Bytes sent in bulk requests (after compression).", s.bytes_sent)
    flagged = CounterMetricFamily(
        "shipper_records_flagged",
        "Records shipped as text with a tag instead of parsed (json_too_deep, parser_error, ...).",
        labels=["reason"],
    )
    for reason in FLAG_REASONS:
        flagged.add_metric([reason], getattr(s, f"flagged_{reason}"))
    yield flagged
    yield GaugeMetricFamily(
        "shipper_last_successful_bulk_timestamp_seconds",
        "Wall-clock time of the last answered bulk request (0: none yet).",
        value=s.last_success,
    )
    yield GaugeMetricFamily(
        "shipper_bulk_failing_since_timestamp_seconds",
        "Wall-clock time since when bulk requests fail as a whole (0: they do not).",
        value=s.failing_since,
    )


class PipelineCollector:
    """``shipper run``: reads the pipeline once it exists (the server starts before it)."""

    def __init__(self, pipeline: Callable[[], Pipeline | None], health: Health) -> None:
        self.pipeline, self.health = pipeline, health

    def collect(self) -> Iterator[Any]:
        code, _ = self.health()
        yield GaugeMetricFamily("shipper_healthy", "1 when /health answers 200.", value=int(code == 200))
        p = self.pipeline()
        if p is None:
            return
        t = p.tailer.stats
        snap = p.snapshot
        yield _counter(
            "records_read", "Records read from log files (multi-line records count once).", t.records
        )
        yield _counter("bytes_read", "Bytes of log files consumed.", t.bytes)
        yield from sink_metrics(p.stats)
        yield _counter(
            "worker_restarts", "Shipping worker processes restarted after dying.", p.worker_restarts
        )
        yield _counter(
            "lines_truncated", "Lines longer than max_line_bytes, cut and flagged.", t.truncated_lines
        )
        yield _counter("rotations", "Files rotated away (renamed or deleted) while being read.", t.rotations)
        yield _counter("truncations", "Files truncated in place (copytruncate).", t.truncations)
        yield _counter("rewrites", "Files rewritten in place under the reader (new content).", t.rewrites)
        yield _counter(
            "files_lost",
            "Files where unread content may be gone (deleted, truncated or rotated away before it was read).",
            t.files_lost,
        )
        yield _counter("bytes_lost", "Unread bytes known to be gone with those files.", t.bytes_lost)
        yield _counter(
            "copies_skipped",
            "Files recognised as copies of content already read (not read again).",
            t.copies_skipped,
        )
        yield _counter(
            "resumed_from_copy", "Files finished from a rotated copy or a .gz.", t.resumed_from_copy
        )
        yield GaugeMetricFamily(
            "shipper_records_in_flight",
            "Records read and not yet acknowledged.",
            value=snap.in_flight_records,
        )
        lag = GaugeMetricFamily(
            "shipper_file_lag_bytes", "File size minus acknowledged position.", labels=["input", "path"]
        )
        for f in snap.files:
            if f.size is not None:
                lag.add_metric([f.input_id, f.path], max(0, f.size - f.committed))
        yield lag


@dataclass(frozen=True)
class EventsSnapshot:
    received: int = 0
    #: Events captured and not yet indexed or dead-lettered.
    in_flight: int = 0
    #: Events given up on at shutdown (Elasticsearch unreachable).
    unsent: int = 0
    reconnects: int = 0


class EventsCollector:
    """``shipper events``: events received / indexed / dead-lettered / unsent."""

    def __init__(
        self, snapshot: Callable[[], EventsSnapshot], stats: Callable[[], SinkStats], health: Health
    ):
        self.snapshot, self.stats, self.health = snapshot, stats, health

    def collect(self) -> Iterator[Any]:
        code, _ = self.health()
        yield GaugeMetricFamily("shipper_healthy", "1 when /health answers 200.", value=int(code == 200))
        snap = self.snapshot()
        yield _counter("events_received", "Celery events received from the broker.", snap.received)
        yield _counter(
            "events_unsent", "Events given up on at shutdown (Elasticsearch unreachable).", snap.unsent
        )
        yield _counter("broker_reconnects", "Reconnections to the broker.", snap.reconnects)
        yield GaugeMetricFamily("shipper_events_in_flight", "Events not yet indexed.", value=snap.in_flight)
        yield from sink_metrics(self.stats())


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them; more are closed at once."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    def __init__(
        self,
        collector: Collector,
        health: Health,
        host: str,
        port: int,
        max_connections: int = 16,
        timeout: float = 5.0,
    ) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                self.connection.settimeout(timeout)  # idle or trickling clients are dropped

            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    code, ctype, data = 200, "text/plain; version=0.0.4", generate_latest(registry)
                elif self.path.startswith("/health"):
                    code, body = health()
                    ctype, data = "application/json", orjson.dumps(body)
                else:
                    code, ctype, data = 404, "text/plain", b"not found\n"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            self.server = _BoundedServer((host, port), Handler, max_connections)
        except OSError as exc:
            raise ShipperError(f"metrics.listen: cannot listen on {host}:{port}: {exc.strerror}") from None
        self.server.socket.set_inheritable(False)
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def metrics_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)
