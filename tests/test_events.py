"""Celery events into Elasticsearch: the mapping by direct calls, and end to end with a REAL worker
(events on) on the REAL RabbitMQ, a REAL `shipper events` process and the test server, across a
broker restart, with failure alerts to a local webhook receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipper.config import AlertsConfig
from shipper.events import Alerter, event_document, event_id
from tests.support.components import require_binary
from tests.support.es import es_client
from tests.support.worker import REPO, celery_worker


def test_task_failed_event_document() -> None:
    ev = {
        "type": "task-failed",
        "uuid": "u1",
        "hostname": "celery@w1",
        "timestamp": 1764000000.5,
        "pid": 42,
        "exception": "ValueError('x')",
        "traceback": "Traceback...",
        "retries": 1,
    }
    doc_id, doc = event_document(ev, task_name="tasks.add")
    assert doc["@timestamp"] == "2025-11-24T16:00:00.500000Z"
    assert doc["celery"]["task"] == {
        "id": "u1",
        "name": "tasks.add",
        "state": "failed",
        "retries": 1,
        "exception": "ValueError('x')",
    }
    assert doc["error"] == {"message": "ValueError('x')", "stack_trace": "Traceback..."}
    assert doc["event"]["dataset"] == "celery.events" and doc["log"]["level"] == "error"
    assert doc_id == event_id(ev) == event_document(dict(ev), "other")[0]  # deterministic
    assert event_id({**ev, "type": "task-retried"}) != doc_id


def test_succeeded_and_worker_events() -> None:
    _, doc = event_document(
        {
            "type": "task-succeeded",
            "uuid": "u2",
            "runtime": 0.25,
            "result": "3",
            "timestamp": 1.0,
            "args": "(1, 2)",
        },
        "tasks.add",
    )
    assert doc["celery"]["task"]["state"] == "succeeded" and doc["event"]["duration"] == 250_000_000
    assert "args" not in doc["celery"]["task"]  # personal data: off by default
    _, doc = event_document({"type": "worker-offline", "hostname": "celery@w1", "timestamp": 1.0}, None)
    assert doc["log"]["level"] == "warning" and doc["message"] == "worker-offline celery@w1"


def test_a_malformed_event_is_still_shipped() -> None:
    import threading

    from shipper.config import EventsConfig
    from shipper.events import EventsBridge

    got: list[Any] = []
    bridge = EventsBridge(EventsConfig(), got.extend, threading.Event())
    bridge.on_event({"type": "task-succeeded", "uuid": "u9"})  # no timestamp, clock, local_received...
    bridge.flush()
    assert [d["celery"]["task"]["id"] for _, d in got] == ["u9"]


def test_alerter_per_failure_and_rate() -> None:
    alerts: list[dict[str, Any]] = []
    now = [0.0]
    a = Alerter(
        AlertsConfig(failure_rate=0.5, window=60, min_tasks=4, on_task_failure=True),
        alerts.append,
        clock=lambda: now[0],
    )
    ok = {"type": "task-succeeded"}
    bad = {"type": "task-failed", "exception": "boom"}
    for ev in (ok, ok, bad):
        a.observe(ev, event_document({**ev, "uuid": "t", "timestamp": 1.0}, "n")[1])
    assert [x["alert"] for x in alerts] == ["task_failed"]
    a.observe(bad, event_document({**bad, "uuid": "t2", "timestamp": 1.0}, "n")[1])  # 2 of 4 failed
    assert [x["alert"] for x in alerts] == ["task_failed", "task_failed", "failure_rate"]
    a.observe(bad, event_document({**bad, "uuid": "t3", "timestamp": 1.0}, "n")[1])  # still high: no repeat
    assert [x["alert"] for x in alerts].count("failure_rate") == 1


class Webhook:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"


def task_docs(es_url: str, namespace: str, task_id: str) -> list[dict[str, Any]]:
    client = es_client(es_url)
    client.indices.refresh(index=f"logs-celery.events-{namespace}*", allow_no_indices=True)
    resp = client.search(
        index=f"logs-celery.events-{namespace}*",
        size=100,
        allow_no_indices=True,
        query={"term": {"celery.task.id": task_id}},
    )
    # Alert documents share the task id; the life cycle is the event documents.
    return [h["_source"] for h in resp["hits"]["hits"] if h["_source"]["event"].get("kind") == "event"]


@pytest.mark.slow
def test_events_end_to_end_with_broker_restart(tmp_path: Path, broker_url: str, es_url: str) -> None:
    ctl = require_binary("rabbitmqctl", "apt-get install rabbitmq-server")
    hook = Webhook()
    namespace = "ev" + str(int(time.time() * 1000))[-8:]
    cfg = tmp_path / "shipper.yml"
    cfg.write_text(f"""
data_dir: {tmp_path / "data"}
inputs:
  - id: none
    paths: ["{tmp_path}/nothing/*.log"]
output:
  elasticsearch:
    hosts: ["{es_url}"]
    namespace: {namespace}
    retry: {{initial_backoff: 0.05, max_backoff: 0.5}}
events:
  broker_url: "{broker_url}"
  alerts:
    webhook_url: "{hook.url}"
metrics:
  enabled: false
""")
    setup = subprocess.run(
        [sys.executable, "-m", "shipper", "setup", "-c", str(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr
    log = tmp_path / "events.log"
    with open(log, "wb") as err:
        bridge = subprocess.Popen(
            [sys.executable, "-m", "shipper", "events", "-c", str(cfg)], cwd=REPO, stderr=err
        )
    try:
        deadline = time.monotonic() + 60
        while b'"events started"' not in log.read_bytes():
            assert bridge.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1)
        with celery_worker(tmp_path, broker_url, extra_env={"SHIPPER_TEST_EVENTS": "1"}) as worker:
            from tests import celery_app

            celery_app.app.conf.task_send_sent_event = True
            ok = celery_app.add.apply_async((1, 2), queue=worker.queue)
            bad = celery_app.fail.apply_async(("alert me",), queue=worker.queue)
            retried = celery_app.retry_once.apply_async(queue=worker.queue)
            assert ok.get(timeout=60) == 3 and retried.get(timeout=60) == "ok after retry"
            with pytest.raises(celery_app.Boom):
                bad.get(timeout=60)
            later = celery_app.add.apply_async((5, 5), queue=worker.queue, countdown=30)
            time.sleep(1)
            celery_app.app.control.revoke(later.id)

            def states(task_id: str) -> set[str]:
                return {d["celery"]["task"]["state"] for d in task_docs(es_url, namespace, task_id)}

            deadline = time.monotonic() + 60
            while not (
                {"sent", "received", "started", "succeeded"} <= states(ok.id)
                and "failed" in states(bad.id)
                and "retry" in states(retried.id)
                and "revoked" in states(later.id)
            ):
                assert time.monotonic() < deadline, (
                    states(ok.id),
                    states(bad.id),
                    states(retried.id),
                    states(later.id),
                    log.read_text()[-2000:],
                )
                time.sleep(0.5)
            before = {
                d["celery"]["event"]["uuid"] + d["celery"]["task"]["state"]
                for t in (ok.id, bad.id, retried.id)
                for d in task_docs(es_url, namespace, t)
            }
            # The broker restarts: the bridge reconnects and carries on; nothing it had is lost.
            subprocess.run([ctl, "stop_app"], check=True, capture_output=True, timeout=120)
            time.sleep(3)
            subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
            deadline = time.monotonic() + 90
            after_restart = None
            while after_restart is None or "succeeded" not in states(after_restart.id):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                try:
                    if after_restart is None:
                        after_restart = celery_app.add.apply_async((7, 7), queue=worker.queue)
                    after_restart.get(timeout=5)
                except Exception:
                    after_restart = None
                time.sleep(0.5)
            after = {
                d["celery"]["event"]["uuid"] + d["celery"]["task"]["state"]
                for t in (ok.id, bad.id, retried.id)
                for d in task_docs(es_url, namespace, t)
            }
            assert before <= after
        bridge.terminate()
        assert bridge.wait(30) == 0
    finally:
        if bridge.poll() is None:
            bridge.kill()
    assert b"broker connection lost, reconnecting" in log.read_bytes()
    failed_alerts = [a for a in hook.received if a["alert"] == "task_failed"]
    assert [a["task"]["id"] for a in failed_alerts] == [bad.id]
    # Each event once: ids are deterministic, so nothing was indexed twice across the reconnect.
    docs = task_docs(es_url, namespace, ok.id)
    assert len(docs) == len({(d["celery"]["event"]["type"], d["@timestamp"]) for d in docs})
