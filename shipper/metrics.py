"""Prometheus ``/metrics`` and ``/health`` for ``shipper run``.

A custom collector reads the pipeline's counters at scrape time (no global registry, no counters
updated on the hot path). The counters add up: every record read is indexed, a duplicate of one
already indexed, dead-lettered, or still in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from .pipeline import Pipeline

#: /health says 503 when there is data to ship and no bulk request has succeeded for this long.
UNHEALTHY_AFTER = 60.0


class PipelineCollector:
    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline

    def collect(self) -> Iterator[Any]:
        t = self.p.tailer.stats
        s = self.p.stats
        snap = self.p.snapshot

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"shipper_{name}", doc, value=value)

        yield counter(
            "records_read", "Records read from log files (multi-line records count once).", t.records
        )
        yield counter("bytes_read", "Bytes of log files consumed.", t.bytes)
        yield counter("documents_indexed", "Documents Elasticsearch created (201).", s.indexed)
        yield counter(
            "documents_duplicate",
            "Documents already indexed (409 on create): re-sends after a restart.",
            s.duplicates,
        )
        yield counter(
            "documents_dead_lettered",
            "Documents refused for good, written to the dead-letter file.",
            s.dead_lettered,
        )
        yield counter("documents_retried", "Document retries after 429/5xx item failures.", s.retried_items)
        yield counter("bulk_requests", "Bulk requests answered by Elasticsearch.", s.bulk_requests)
        yield counter(
            "bulk_requests_failed",
            "Bulk requests that failed as a whole (connection, 429, 5xx).",
            s.failed_requests,
        )
        yield counter("bytes_sent", "Bytes sent in bulk requests (after compression).", s.bytes_sent)
        yield counter(
            "lines_truncated", "Lines longer than max_line_bytes, cut and flagged.", t.truncated_lines
        )
        yield counter("rotations", "Files rotated away (renamed or deleted) while being read.", t.rotations)
        yield counter("truncations", "Files truncated in place (copytruncate).", t.truncations)
        yield counter(
            "files_lost", "Files deleted before their unacknowledged bytes could be read.", t.files_lost
        )
        yield GaugeMetricFamily(
            "shipper_records_in_flight",
            "Records read and not yet acknowledged.",
            value=snap.in_flight_records,
        )
        yield GaugeMetricFamily(
            "shipper_last_successful_bulk_timestamp_seconds",
            "Wall-clock time of the last answered bulk request.",
            value=s.last_success,
        )
        lag = GaugeMetricFamily(
            "shipper_file_lag_bytes", "File size minus acknowledged position.", labels=["input", "path"]
        )
        for f in snap.files:
            if f.size is not None:
                lag.add_metric([f.input_id, f.path], max(0, f.size - f.committed))
        yield lag


def health(pipeline: Pipeline) -> tuple[int, dict[str, Any]]:
    s = pipeline.stats
    snap = pipeline.snapshot
    stalled = snap.in_flight_records > 0 and s.last_success and time.time() - s.last_success > UNHEALTHY_AFTER
    body = {
        "status": "stalled" if stalled else "ok",
        "records_in_flight": snap.in_flight_records,
        "last_successful_bulk": s.last_success or None,
        "documents_indexed": s.indexed,
        "documents_dead_lettered": s.dead_lettered,
    }
    return (503 if stalled else 200), body


class MetricsServer:
    def __init__(self, pipeline: Pipeline, host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PipelineCollector(pipeline))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    code, ctype, data = 200, "text/plain; version=0.0.4", generate_latest(registry)
                elif self.path.startswith("/health"):
                    code, body = health(pipeline)
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

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
