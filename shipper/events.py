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

import contextlib
import datetime as dt
import logging
import math
import queue
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

#: Characters kept of a keyword-like value (task name, uuid, hostname, queue): the templates'
#: ``ignore_above``, so a kept value is also indexed.
MAX_KEYWORD = 1024
#: Characters kept of an exception, a result or args/kwargs reprs.
MAX_TEXT = 64 * 1024
#: Characters kept of a traceback.
MAX_TRACEBACK = 1024 * 1024
#: Characters of the whole event kept in ``event.original`` when it was malformed.
MAX_ORIGINAL = 32 * 1024
#: Timestamps outside [1970, 9999] are not real event times.
_MAX_TS = 253402300799.0
_MAX_INT = 2**31
MALFORMED_TAG = "malformed_event"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _safe_repr(value: Any, limit: int) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that raises, or nesting deeper than the interpreter's stack
        text = f"<unrepresentable {type(value).__name__}>"
    return text[:limit]


class _Mapper:
    """Coerces the fields of one event to what the templates map, noting every problem."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.event = event
        self.problems: list[str] = []

    def text(self, key: str, limit: int = MAX_KEYWORD) -> str | None:
        value = self.event.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            text = value
        elif isinstance(value, float) or (
            isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30
        ):
            text = str(value)
        else:
            self.problems.append(f"{key}: {type(value).__name__} where text was expected")
            text = _safe_repr(value, limit)
        if len(text) > limit:
            self.problems.append(f"{key}: longer than {limit} characters, cut")
            text = text[:limit]
        return text

    def integer(self, key: str) -> int | None:
        value = self.event.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_INT:
            return value
        self.problems.append(f"{key}: not a small non-negative integer")
        return None

    def number(self, key: str, high: float) -> float | None:
        value = self.event.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e300 else math.inf
            if math.isfinite(number) and 0 <= number <= high:
                return number
        self.problems.append(f"{key}: not a number in [0, {high:g}]")
        return None


def _uuid5(name: str) -> str:
    """uuid5 of any text; lone surrogates (undecodable bytes) are escaped instead of raising."""
    try:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    except UnicodeEncodeError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name.encode("utf-8", "backslashreplace").decode()))


def event_id(event: Mapping[str, Any]) -> str:
    """Deterministic from the event's uuid (or hostname), type and timestamp: never raises."""
    parts = []
    for value in (event.get("uuid") or event.get("hostname"), event.get("type"), event.get("timestamp")):
        if (
            value is None
            or isinstance(value, str | float)
            or (isinstance(value, int) and abs(value) < 10**30)
        ):
            parts.append(f"{value}")
        else:
            parts.append(_safe_repr(value, MAX_ORIGINAL))
    return _uuid5("celery-event:" + "|".join(parts))


def event_document(
    event: Mapping[str, Any], task_name: str | None, include_args: bool = False
) -> tuple[str, dict[str, Any]]:
    """``(id, document)`` for one Celery event: pure, and total.

    Any event gives a document: a field of the wrong type, out of range (NaN/inf runtime, a
    timestamp in year 300,000) or too long is left out or cut, and the document is tagged
    ``malformed_event`` with the reasons in ``celery.event.problems`` and the event's repr in
    ``event.original``. Nothing here raises, so a hostile event cannot stop the capture.
    """
    if not isinstance(event, Mapping):
        event = {"type": "unknown", "original": _safe_repr(event, MAX_ORIGINAL)}
    m = _Mapper(event)
    raw_type = event.get("type")
    if isinstance(raw_type, str) and raw_type:
        etype = m.text("type") or "unknown"
    else:
        etype = "unknown"
        m.problems.append("type: missing or not a string")
    ts = m.number("timestamp", _MAX_TS)
    if ts is None and "timestamp" not in event:
        m.problems.append("timestamp: missing")
    hostname = m.text("hostname")
    doc: dict[str, Any] = {
        "@timestamp": _iso(ts if ts is not None else time.time()),
        "log": {"level": LEVELS.get(etype, "info"), "logger": "celery.events"},
        "event": {"dataset": "celery.events", "kind": "event", "action": etype},
        "celery": {"event": {"type": etype}, "worker": {"hostname": hostname}},
    }
    pid = m.integer("pid")
    if pid is not None:
        doc["process"] = {"pid": pid}
    if etype.startswith("task-"):
        task_uuid = m.text("uuid")
        if task_uuid is None:
            m.problems.append("uuid: missing")
        name = m.text("name") or (task_name[:MAX_KEYWORD] if isinstance(task_name, str) else None)
        task: dict[str, Any] = {"id": task_uuid, "name": name, "state": STATES.get(etype, etype[5:])}
        doc["celery"]["event"]["uuid"] = task_uuid
        retries = m.integer("retries")
        if retries is not None:
            task["retries"] = retries
        for key in ("queue", "routing_key", "eta", "expires", "exchange"):
            value = m.text(key)
            if value not in (None, ""):
                task[key] = value
        runtime = m.number("runtime", 1e9)
        if runtime is not None:
            task["runtime"] = runtime
            doc["event"]["duration"] = int(runtime * 1e9)
        if include_args:
            for key in ("args", "kwargs"):
                value = m.text(key, MAX_TEXT)
                if value is not None:
                    task[key] = value
        exception = m.text("exception", MAX_TEXT) if etype in ("task-failed", "task-retried") else None
        if etype == "task-failed":
            doc["error"] = {"message": exception, "stack_trace": m.text("traceback", MAX_TRACEBACK)}
            doc["event"]["outcome"] = "failure"
            task["exception"] = exception
        elif etype == "task-retried":
            task["exception"] = exception
        elif etype == "task-succeeded":
            doc["event"]["outcome"] = "success"
            result = m.text("result", MAX_KEYWORD) if event.get("result") is not None else None
            if result is not None:
                task["result"] = result
        elif etype == "task-revoked":
            task["terminated"] = event.get("terminated") is True
            signum = m.text("signum")
            if signum:
                task["signal"] = signum
        doc["celery"]["task"] = task
        doc["message"] = f"{etype} {name}[{task_uuid}]" + (f": {exception}" if exception else "")
    else:
        doc["message"] = f"{etype} {hostname}"
    receiver_error = event.get("_receiver_error")
    if receiver_error is not None:
        m.problems.append(f"refused by Celery's event receiver: {_safe_repr(receiver_error, 300)}")
    if m.problems:
        doc["tags"] = [MALFORMED_TAG]
        doc["celery"]["event"]["problems"] = m.problems[:20]
        doc["event"]["original"] = _safe_repr(dict(event), MAX_ORIGINAL)
    return event_id(event), doc


class Alerter:
    """Failure alerts: one per failed task, and one when the failure rate over a window passes the
    threshold (then not again until it has dropped below). Calls ``notify(alert_dict)``.

    Alerts are built from the mapped document, whose values are already checked and bounded."""

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
        etype = doc.get("event", {}).get("action")
        if etype not in ("task-succeeded", "task-failed"):
            return
        now = self.clock()
        failed = etype == "task-failed"
        celery = doc.get("celery", {})
        task = celery.get("task", {})
        if failed and self.cfg.on_task_failure:
            self.notify(
                {
                    "alert": "task_failed",
                    "task": {"id": task.get("id"), "name": task.get("name")},
                    "exception": task.get("exception"),
                    "worker": celery.get("worker", {}).get("hostname"),
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


class RateLimitedLog:
    """Log a recurring problem at most once per ``interval`` seconds, with how often it happened."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = interval, clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, message: str, **extra: Any) -> bool:
        now = self.clock()
        with self._lock:
            last = self._last.get(message)
            if last is not None and now - last < self.interval:
                self._suppressed[message] = self._suppressed.get(message, 0) + 1
                return False
            self._last[message] = now
            suppressed = self._suppressed.pop(message, 0)
        log.warning(message, extra={**extra, "suppressed_since_last": suppressed})
        return True


def post_webhook(url: str, body: Mapping[str, Any], timeout: float = 5.0) -> tuple[bool, str]:
    """POST one alert: ``(delivered, why not)``. Never raises, never follows a redirect, and
    takes at most ``timeout`` seconds in all."""
    import orjson

    from .httppost import HttpPostError, post

    try:
        data = orjson.dumps(body, default=str)
        answer = post(url, data, {"Content-Type": "application/json"}, timeout, max_answer_bytes=64 * 1024)
    except HttpPostError as exc:
        return False, str(exc)
    except Exception as exc:  # anything else a hostile peer or a strange alert can cause
        return False, f"{type(exc).__name__}: {exc}"[:300]
    if 200 <= answer.status < 300:
        return True, ""
    return False, f"HTTP {answer.status} {answer.reason}"[:300]


_CLOSE = object()


class WebhookSender:
    """Alert webhook calls off the capture thread: a bounded queue and one delivery thread.

    Capture must never wait for a webhook (the broker expires events meanwhile): ``submit`` only
    enqueues, and when the queue is full the alert is dropped, counted and warned about (at most
    once a minute). Each call has an overall deadline, so a slow peer delays alerts, nothing else.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        max_queue: int = 1000,
        post: Callable[[str, Mapping[str, Any], float], tuple[bool, str]] = post_webhook,
    ) -> None:
        from .redact import redact_url

        self.url, self.timeout, self.post = url, timeout, post
        self.shown_url = redact_url(url)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self.sent = self.failed = self.dropped = 0
        self.warnings = RateLimitedLog()
        self._lock = threading.Lock()
        self._in_flight = False
        self._abandoned = False
        self.thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self.thread.start()

    def submit(self, alert: Mapping[str, Any]) -> bool:
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            self.warnings.warning(
                "alert webhook queue full, alert dropped",
                webhook=self.shown_url,
                dropped=self.dropped,
                queue_size=self.queue.maxsize,
            )
            return False
        return True

    def _run(self) -> None:
        while True:
            alert = self.queue.get()
            if alert is _CLOSE:
                return
            with self._lock:
                self._in_flight = True
            ok, why = self.post(self.url, alert, self.timeout)
            with self._lock:
                self._in_flight = False
                if self._abandoned:  # close() gave up on us and counted this one as dropped
                    return
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
            if not ok:
                self.warnings.warning("alert webhook failed", webhook=self.shown_url, reason=why)

    def close(self, timeout: float) -> None:
        """Deliver what is queued for at most ``timeout`` seconds; count the rest as dropped."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self.queue.put(_CLOSE, timeout=max(0.0, deadline - time.monotonic()))
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if not self.thread.is_alive():
            return
        with self._lock:
            self._abandoned = True
            left = 1 if self._in_flight else 0
            while True:
                try:
                    if self.queue.get_nowait() is not _CLOSE:
                        left += 1
                except queue.Empty:
                    break
            self.dropped += left
        if left:
            log.warning(
                "alerts not delivered at shutdown", extra={"dropped": left, "webhook": self.shown_url}
            )


def safe_receiver(
    app: Any, connection: Any, on_event: Callable[[Any], None], on_bad: Callable[[Any, str], None]
) -> Any:
    """Celery's event receiver, hardened: no message can make the capture raise.

    Celery's own ``EventReceiver`` raises out of ``capture()`` (ending it) for a body that does not
    decode or is not accepted (kombu's decode error), for an event that is not a JSON object, or
    has no ``type``, a non-numeric ``clock``/``timestamp``/``utcoffset``, or a ``type`` that cannot
    be a dict key. Here an undecodable message or a non-object goes to ``on_bad(raw, reason)``
    (dead-lettered), and every object goes to ``on_event``, whatever Celery thought of it.
    """
    from celery.events.receiver import EventReceiver

    class SafeReceiver(EventReceiver):  # type: ignore[misc]
        def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:
            return [
                Consumer(
                    queues=[self.queue],
                    callbacks=[self._receive],
                    no_ack=True,
                    accept=self.accept,
                    on_decode_error=self._on_decode_error,
                )
            ]

        def _on_decode_error(self, message: Any, exc: Exception) -> None:
            body = getattr(message, "body", b"")
            raw = body[:MAX_ORIGINAL] if isinstance(body, bytes | str) else _safe_repr(body, MAX_ORIGINAL)
            content_type = getattr(message, "content_type", None)
            on_bad(raw, f"undecodable event message ({content_type}): {type(exc).__name__}: {exc}"[:500])

        def _receive(self, body: Any, message: Any, list: Any = list, isinstance: Any = isinstance) -> None:
            events = body if isinstance(body, list) else [body]
            for event in events:
                if not isinstance(event, dict):
                    on_bad(_safe_repr(event, MAX_ORIGINAL), "an event must be a JSON object")
                    continue
                try:
                    self.event_from_message(event)  # clock and timezone adjustments, in place
                except Exception as exc:
                    event.setdefault("_receiver_error", f"{type(exc).__name__}: {exc}"[:300])
                on_event(event)

    return SafeReceiver(connection, handlers={}, app=app)


def _is_login_refused(exc: BaseException) -> bool:
    """AMQP 403 ACCESS_REFUSED (py-amqp raises it as a channel error, so kombu does not count it
    among the connection errors)."""
    return getattr(exc, "reply_code", None) == 403 or "ACCESS_REFUSED" in str(exc)


class EventsBridge:
    """Capture events (reconnecting with backoff) and hand documents to ``deliver`` in batches.

    Every event becomes a document (flagged when malformed) or, when it is not even a JSON
    object, a dead-letter entry via ``dead_letter(raw, reason)``; both are counted. Webhook
    alerts go through a :class:`WebhookSender`, off the capture thread."""

    def __init__(
        self,
        cfg: EventsConfig,
        deliver: Callable[[list[tuple[str, dict[str, Any]]]], None],
        stop: threading.Event,
        max_wait: float = 1.0,
        dead_letter: Callable[[Any, str], None] | None = None,
    ) -> None:
        from celery import Celery

        self.cfg, self.deliver, self.stop = cfg, deliver, stop
        self.dead_letter_sink = dead_letter
        self.app = Celery(broker=cfg.broker_url, set_as_current=False)
        self.state = self.app.events.State()
        self.max_wait = max_wait
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.received = 0
        self.malformed = 0
        self.dead_lettered = 0
        self.state_errors = 0
        self.delivery_errors = 0
        self.reconnects = 0
        self.warnings = RateLimitedLog()
        alerts = cfg.alerts
        self.webhook = (
            WebhookSender(alerts.webhook_url, alerts.webhook_timeout, alerts.webhook_queue)
            if alerts.webhook_url
            else None
        )
        self.alerter = Alerter(alerts, self._alert) if (alerts.webhook_url or alerts.write_document) else None
        self._lock = threading.Lock()

    def _alert(self, alert: dict[str, Any]) -> None:
        if self.webhook is not None:
            self.webhook.submit(alert)
        if self.cfg.alerts.write_document:
            doc = {
                "@timestamp": alert.get("@timestamp") or _iso(time.time()),
                "log": {"level": "error", "logger": "shipper.events"},
                "event": {"dataset": "celery.events", "kind": "alert", "action": alert["alert"]},
                "message": f"alert: {alert['alert']}",
                "labels": {"alert": alert["alert"]},
                "celery": {"task": alert["task"]} if "task" in alert else {},
            }
            doc_id = _uuid5(f"alert:{sorted(alert.items(), key=str)}")
            with self._lock:
                self.pending.append((doc_id, doc))

    def dead_letter(self, raw: Any, reason: str) -> None:
        """A message that is not an event at all: kept with the reason, counted, never raised."""
        self.dead_lettered += 1
        self.warnings.warning("event message dead-lettered", reason=reason, dead_lettered=self.dead_lettered)
        if self.dead_letter_sink is not None:
            try:
                self.dead_letter_sink(raw, reason)
            except Exception as exc:
                log.error("cannot write the events dead-letter file", extra={"reason": str(exc)})

    def on_event(self, event: Any) -> None:
        """Never raises: the capture thread calls this for every message."""
        self.received += 1
        try:
            self._on_event(event)
        except Exception as exc:  # the mapping is total; this is the last line of defence
            self.dead_letter(
                _safe_repr(event, MAX_ORIGINAL), f"event not processed: {type(exc).__name__}: {exc}"
            )

    def _on_event(self, event: Any) -> None:
        if not isinstance(event, dict):
            self.dead_letter(_safe_repr(event, MAX_ORIGINAL), "an event must be a JSON object")
            return
        etype = event.get("type")
        try:
            self.state.event(event)
        except Exception as exc:  # Celery's State is not written for hostile input
            self.state_errors += 1
            self.warnings.warning(
                "event not understood by Celery's State", reason=repr(exc)[:300], type=str(etype)[:100]
            )
        if etype == "worker-heartbeat" and not self.cfg.include_heartbeats:
            return
        task_name = None
        task_uuid = event.get("uuid")
        if isinstance(etype, str) and etype.startswith("task-") and isinstance(task_uuid, str) and task_uuid:
            name = getattr(self.state.tasks.get(task_uuid), "name", None)
            task_name = name if isinstance(name, str) else None
        doc_id, doc = event_document(event, task_name, self.cfg.include_task_args)
        if "tags" in doc:
            self.malformed += 1
            self.warnings.warning(
                "malformed Celery event, shipped flagged",
                problems=doc["celery"]["event"].get("problems"),
                malformed=self.malformed,
            )
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
            try:
                self.flush()
            except Exception as exc:  # must not end the flusher: events would pile up unsent
                self.delivery_errors += 1
                log.error("events delivery failed", extra={"reason": f"{type(exc).__name__}: {exc}"[:500]})

    def run(self) -> None:
        """Capture on one long-lived connection (each new consumer would re-declare the
        auto-delete event queue and miss what was sent meanwhile); reconnect with backoff."""
        from .errors import ShipperError
        from .redact import redact_text, redact_url

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
                    recv = safe_receiver(self.app, conn, self.on_event, self.dead_letter)

                    def stop_capture(receiver: Any = recv) -> None:
                        self.stop.wait()
                        receiver.should_stop = True

                    stopper = threading.Thread(target=stop_capture, daemon=True)
                    stopper.start()
                    log.info("capturing Celery events", extra={"broker": redact_text(conn.as_uri())})
                    delay = 1.0
                    recv.capture(limit=None, timeout=None, wakeup=True)
            except connection_errors as exc:
                if self.stop.is_set():
                    break
                self.reconnects += 1
                log.warning(
                    "broker connection lost, reconnecting",
                    extra={"reason": redact_text(str(exc)), "retry_in": delay},
                )
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:
                if _is_login_refused(exc):  # wrong credentials: retrying cannot help
                    self.stop.set()
                    flusher.join(timeout=self.max_wait + 1)
                    self.flush()
                    raise ShipperError(
                        f"the broker at {redact_url(self.cfg.broker_url)} refused the login: "
                        f"{redact_text(str(exc))[:300]}"
                    ) from None
                if self.stop.is_set():
                    break
                self.reconnects += 1  # anything else must not end the capture either
                log.error(
                    "event capture failed, reconnecting",
                    extra={"reason": redact_text(f"{type(exc).__name__}: {exc}")[:500], "retry_in": delay},
                )
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        flusher.join(timeout=self.max_wait + 1)
        self.flush()
        if self.webhook is not None:
            self.webhook.close(timeout=min(2 * self.cfg.alerts.webhook_timeout, 10.0))

    def counters(self) -> dict[str, int]:
        out = {
            "received": self.received,
            "malformed": self.malformed,
            "dead_lettered": self.dead_lettered,
            "state_errors": self.state_errors,
            "delivery_errors": self.delivery_errors,
            "reconnects": self.reconnects,
        }
        if self.webhook is not None:
            out |= {
                "webhook_sent": self.webhook.sent,
                "webhook_failed": self.webhook.failed,
                "webhook_dropped": self.webhook.dropped,
            }
        return out
