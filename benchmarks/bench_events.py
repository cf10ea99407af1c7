"""Events/s the Celery events bridge sustains: the bridge's on_event (State tracking, mapping to
ECS) and the real bulk path (encode, gzip, the official client) into the acknowledging endpoint.
The broker is left out: this measures the bridge, not RabbitMQ.

Run: python benchmarks/bench_events.py [--tasks 50000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from shipper.config import ElasticsearchConfig, EventsConfig
from shipper.events import EventsBridge
from shipper.sink.bulk import BulkSender, EsTransport, SinkStats
from shipper.sink.client import make_client
from shipper.sink.deadletter import DeadLetterFile
from shipper.sink.encode import IndexNaming, make_item

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=50_000)
    args = ap.parse_args()
    port = 18777
    sink = subprocess.Popen([sys.executable, str(HERE / "bulk_sink.py"), str(port)])
    time.sleep(0.5)
    try:
        es = ElasticsearchConfig(hosts=(f"http://127.0.0.1:{port}",))
        naming = IndexNaming("daily_index")
        stats = SinkStats()
        dead = DeadLetterFile("/tmp/bench-events-dead.ndjson")
        sender = BulkSender(
            EsTransport(make_client(es), True), dead, lambda items: None, threading.Event(), stats=stats
        )

        def deliver(docs: list) -> None:  # type: ignore[type-arg]
            sender.send(
                [
                    make_item(naming, i, naming.index("celery.events", d["@timestamp"]), d, 0, None)
                    for i, d in docs
                ]
            )

        bridge = EventsBridge(EventsConfig(), deliver, threading.Event())
        events = []
        t = 1795553983.0
        for n in range(args.tasks):
            tid = str(uuid.UUID(int=n))
            for etype, extra in (
                ("task-sent", {"name": "billing.charge", "queue": "celery"}),
                ("task-received", {"name": "billing.charge", "retries": 0}),
                ("task-started", {}),
                ("task-succeeded", {"runtime": 0.01, "result": "'ok'"}),
            ):
                t += 0.0001
                events.append(
                    {
                        "type": etype,
                        "uuid": tid,
                        "hostname": "celery@bench",
                        "timestamp": t,
                        "pid": 4242,
                        "clock": n,
                        **extra,
                    }
                )
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for i, ev in enumerate(events, 1):
            bridge.on_event(ev)
            if i % 2000 == 0:
                bridge.flush()
        bridge.flush()
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        assert stats.indexed == len(events), stats
        print(
            f"{len(events):,} events ({args.tasks:,} tasks x 4): {len(events) / wall:,.0f} events/s, "
            f"{cpu / len(events) * 1e6:.1f} CPU-s per 1M events (one process)"
        )
    finally:
        sink.terminate()


if __name__ == "__main__":
    main()
