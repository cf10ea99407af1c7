"""``shipper events``: Celery's event stream into Elasticsearch, next to the logs.

Flower shows task-sent / received / started / succeeded / failed / retried / revoked / rejected and
worker-online / offline live, then forgets them. This bridge captures them with
``app.events.Receiver`` and an ``app.events.State`` (which knows a task's name when a later event
does not carry it), turns each into an ECS document (``event.dataset: celery.events``) and ships
them through the same bulk sender as the logs. Document ids come from the event's uuid, type and
timestamp, so a restart that sees an event again cannot index it twice.

Events are auto-acknowledged by the broker, so a received event lives in memory until Elasticsearch
has it: the sender retries without limit, and a broker restart only interrupts the capture, which
reconnects with backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .config import AlertsConfig, EventsConfig

log = logging.getLogger(__name__)

STATES = {
    "task-sent": "sent",
    "task-received": "received",
    "task-started": "started",
    "task-succeeded": "succeeded",
    "task-failed": "failed",
    "task-retried": "retry",
    "task-revoked": "revoked",
    "task-rejected": "rejected",
}
LEVELS = {
    "task-failed": "error",
    "task-retried": "warning",
    "task-revoked": "warning",
    "task-rejected": "warning",
    "worker-offline": "warning",
}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_id(event: Mapping[str, Any]) -> str:
    key = f"{event.get('uuid') or event.get('hostname')}|{event.get('type')}|{event.get('timestamp')}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"celery-event:{key}"))


def event_document(
    event: Mapping[str, Any], task_name: str | None, include_args: bool = False
) -> tuple[str, dict[str, Any]]:
    """``(id, document)`` for one Celery event: pure."""
    etype = str(event.get("type", "unknown"))
    ts = event.get("timestamp")
    doc: dict[str, Any] = {
        "@timestamp": _iso(float(ts)) if isinstance(ts, int | float) else _iso(time.time()),
        "log": {"level": LEVELS.get(etype, "info"), "logger": "celery.events"},
        "event": {"dataset": "celery.events", "kind": "event", "action": etype},
        "celery": {"event": {"type": etype}, "worker": {"hostname": event.get("hostname")}},
    }
    if isinstance(event.get("pid"), int):
        doc["process"] = {"pid": event["pid"]}
    if etype.startswith("task-"):
        name = event.get("name") or task_name
        task: dict[str, Any] = {"id": event.get("uuid"), "name": name, "state": STATES.get(etype, etype[5:])}
        doc["celery"]["event"]["uuid"] = event.get("uuid")
        for key in ("retries", "queue", "routing_key", "eta", "expires", "exchange"):
            if event.get(key) not in (None, ""):
                task[key] = event[key]
        if isinstance(event.get("runtime"), int | float):
            task["runtime"] = float(event["runtime"])
            doc["event"]["duration"] = int(event["runtime"] * 1e9)
        if include_args:
            for key in ("args", "kwargs"):
                if event.get(key) is not None:
                    task[key] = str(event[key])
        if etype == "task-failed":
            doc["error"] = {"message": event.get("exception"), "stack_trace": event.get("traceback")}
            doc["event"]["outcome"] = "failure"
            task["exception"] = event.get("exception")
        elif etype == "task-retried":
            task["exception"] = event.get("exception")
        elif etype == "task-succeeded":
            doc["event"]["outcome"] = "success"
            if event.get("result") is not None:
                task["result"] = str(event["result"])[:1024]
        elif etype == "task-revoked":
            task["terminated"] = bool(event.get("terminated"))
            if event.get("signum"):
                task["signal"] = str(event["signum"])
        doc["celery"]["task"] = task
        doc["message"] = f"{etype} {name}[{event.get('uuid')}]" + (
            f": {event.get('exception')}" if event.get("exception") else ""
        )
    else:
        doc["message"] = f"{etype} {event.get('hostname')}"
    return event_id(event), doc


class Alerter:
    """Failure alerts: one per failed task, and one when the failure rate over a window passes the
    threshold (then not again until it has dropped below). Calls ``notify(alert_dict)``."""

    def __init__(
        self,
        cfg: AlertsConfig,
        notify: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg, self.notify, self.clock = cfg, notify, clock
        self._finished: deque[tuple[float, bool]] = deque()
        self._rate_alerting = False

    def observe(self, event: Mapping[str, Any], doc: Mapping[str, Any]) -> None:
        etype = event.get("type")
        if etype not in ("task-succeeded", "task-failed"):
            return
        now = self.clock()
        failed = etype == "task-failed"
        task = doc.get("celery", {}).get("task", {})
        if failed and self.cfg.on_task_failure:
            self.notify(
                {
                    "alert": "task_failed",
                    "task": {"id": task.get("id"), "name": task.get("name")},
                    "exception": event.get("exception"),
                    "worker": event.get("hostname"),
                    "@timestamp": doc.get("@timestamp"),
                }
            )
        if self.cfg.failure_rate is None:
            return
        self._finished.append((now, failed))
        while self._finished and self._finished[0][0] < now - self.cfg.window:
            self._finished.popleft()
        total = len(self._finished)
        rate = sum(f for _, f in self._finished) / total if total else 0.0
        if total >= self.cfg.min_tasks and rate >= self.cfg.failure_rate:
            if not self._rate_alerting:
                self._rate_alerting = True
                self.notify(
                    {
                        "alert": "failure_rate",
                        "rate": round(rate, 3),
                        "tasks": total,
                        "window_seconds": self.cfg.window,
                        "@timestamp": doc.get("@timestamp"),
                    }
                )
        else:
            self._rate_alerting = False


def post_webhook(url: str, body: Mapping[str, Any], timeout: float = 5.0) -> bool:
    import urllib.request

    import orjson

    if not url.startswith(("http://", "https://")):
        return False
    req = urllib.request.Request(  # noqa: S310 - scheme checked
        url,
        data=orjson.dumps(body),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked
            return bool(200 <= resp.status < 300)
    except OSError as exc:
        log.warning("alert webhook failed", extra={"reason": str(exc)})
        return False


class EventsBridge:
    """Capture events (reconnecting with backoff) and hand documents to ``deliver`` in batches."""

    def __init__(
        self,
        cfg: EventsConfig,
        deliver: Callable[[list[tuple[str, dict[str, Any]]]], None],
        stop: threading.Event,
        max_wait: float = 1.0,
    ) -> None:
        from celery import Celery

        self.cfg, self.deliver, self.stop = cfg, deliver, stop
        self.app = Celery(broker=cfg.broker_url, set_as_current=False)
        self.state = self.app.events.State()
        self.max_wait = max_wait
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.received = 0
        self.reconnects = 0
        alerts = cfg.alerts
        self.alerter = Alerter(alerts, self._alert) if (alerts.webhook_url or alerts.write_document) else None
        self._lock = threading.Lock()

    def _alert(self, alert: dict[str, Any]) -> None:
        if self.cfg.alerts.webhook_url:
            post_webhook(self.cfg.alerts.webhook_url, alert)
        if self.cfg.alerts.write_document:
            doc = {
                "@timestamp": alert.get("@timestamp") or _iso(time.time()),
                "log": {"level": "error", "logger": "shipper.events"},
                "event": {"dataset": "celery.events", "kind": "alert", "action": alert["alert"]},
                "message": f"alert: {alert['alert']}",
                "labels": {"alert": alert["alert"]},
                "celery": {"task": alert["task"]} if "task" in alert else {},
            }
            self.pending.append((str(uuid.uuid5(uuid.NAMESPACE_URL, f"alert:{sorted(alert.items())}")), doc))

    def on_event(self, event: dict[str, Any]) -> None:
        self.received += 1
        etype = event.get("type", "")
        try:
            self.state.event(event)
        except (KeyError, TypeError, ValueError) as exc:  # a malformed event must not stop the capture
            log.warning("event not understood by Celery's State", extra={"reason": repr(exc), "type": etype})
        if etype == "worker-heartbeat" and not self.cfg.include_heartbeats:
            return
        task_name = None
        if etype.startswith("task-") and event.get("uuid"):
            task = self.state.tasks.get(event["uuid"])
            task_name = getattr(task, "name", None)
        doc_id, doc = event_document(event, task_name, self.cfg.include_task_args)
        with self._lock:
            self.pending.append((doc_id, doc))
        if self.alerter is not None:
            self.alerter.observe(event, doc)

    def flush(self) -> None:
        with self._lock:
            batch, self.pending = self.pending, []
        if batch:
            self.deliver(batch)  # retries until indexed (the sender's stop is not ours)

    def _flusher(self) -> None:
        while not self.stop.wait(self.max_wait):
            self.flush()

    def run(self) -> None:
        """Capture on one long-lived connection (each new consumer would re-declare the
        auto-delete event queue and miss what was sent meanwhile); reconnect with backoff."""
        flusher = threading.Thread(target=self._flusher, name="events-flush", daemon=True)
        flusher.start()
        # kombu knows which exceptions mean "the connection is gone" for this transport.
        from kombu.exceptions import OperationalError

        # ensure_connection() wraps the transport's errors in OperationalError.
        connection_errors = (*self.app.connection_for_read().connection_errors, OSError, OperationalError)
        delay = 1.0
        while not self.stop.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    conn.ensure_connection(max_retries=1)
                    recv = self.app.events.Receiver(conn, handlers={"*": self.on_event})

                    def stop_capture(receiver: Any = recv) -> None:
                        self.stop.wait()
                        receiver.should_stop = True

                    stopper = threading.Thread(target=stop_capture, daemon=True)
                    stopper.start()
                    log.info("capturing Celery events", extra={"broker": conn.as_uri()})
                    delay = 1.0
                    recv.capture(limit=None, timeout=None, wakeup=True)
            except connection_errors as exc:
                if self.stop.is_set():
                    break
                self.reconnects += 1
                log.warning(
                    "broker connection lost, reconnecting", extra={"reason": str(exc), "retry_in": delay}
                )
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        flusher.join(timeout=self.max_wait + 1)
        self.flush()
