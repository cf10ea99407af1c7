"""Celery worker logs in the default text formats.

``[%(asctime)s: %(levelname)s/%(processName)s] %(message)s`` and the task variant with
``%(task_name)s[%(task_id)s]: `` before the message. Traceback lines follow without a prefix, so a
record is a prefixed line plus every following line that is not one.

The well-known messages give ``celery.task.*``: Celery >= 5.1's ``Task name[id] ...`` life
cycle, and the older wordings (``Received task:`` of 3.1/4.x; ``Got task from broker:``,
``Task accepted: ... pid:N`` and ``raised exception:`` of 2.5/3.0). Broker connection trouble gets
``event.category`` and tags so it can be found, with the retry delay of every wording (3.0's
``Consumer: Connection Error``, 3.1/4.x's ``Trying again in 2.00 seconds...``, 5.x's ``(n/m)``).

The older wordings are tried only after the common ones failed (first-letter dispatch or a
failed match), so the hot path of a Celery 5 worker's log does no extra work.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Document, ParseContext, Parser, exception_from_trace, split_stack_trace, unparsed

PREFIX = re.compile(r"\[(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)[,.](\d{3}): ([A-Z]+)/([^\]]+)\] ?")
_PREFIX_BYTES = re.compile(rb"\[\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d{3}: [A-Z]+/")

TASK_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[^\]\s]+"
TASK_EVENT = re.compile(rf"Task ([\w.:\-<>]+)\[({TASK_ID})\] (.*)", re.S)
#: ``Received task: name[id]`` (3.1/4.x) and ``Got task from broker: name[id]`` (2.5/3.0), both
#: ``Request.__str__``: `` eta:[...]`` and `` expires:[...]`` follow when set.
RECEIVED_OLD = re.compile(
    rf"(?:Received task|Got task from broker): ([\w.:\-<>]+)\[({TASK_ID})\](?: eta:\[([^\]]*)\])?"
)
ACCEPTED = re.compile(rf"Task accepted: ([\w.:\-<>]+)\[({TASK_ID})\]")
TASK_PREFIXED = re.compile(rf"([\w.:\-<>]+)\[({TASK_ID})\]: (.*)", re.S)
SUCCEEDED = re.compile(r"succeeded in ([0-9.eE+\-]+)s: (.*)", re.S)
TIME_LIMIT = re.compile(
    rf"(Soft|Hard) time limit \((\d+(?:\.\d+)?)s\) exceeded for ([\w.:\-<>]+)\[({TASK_ID})\]"
)
REVOKED = re.compile(rf"Discarding revoked task: ([\w.:\-<>]+)\[({TASK_ID})\]")
CANNOT_CONNECT = re.compile(r"consumer: Cannot connect to (\S+?): (.*?)\.?\s*$", re.S)
#: The last line of ``CONNECTION_ERROR`` (3.1+): ``humanize_seconds(interval, "in", " ")`` then
#: `` (n/m)`` since 5.x. Or one of ``_OTHER_STEPS`` (no delay).
RETRY_STEP = re.compile(
    r"Trying again (?:in (\d+(?:\.\d+)?) (second|minute|hour|day)s?|now)\.\.\.(?: \((\d+)/(\d+)\))?\s*$"
)
#: Celery 2.5/3.0: one line, ``%d`` seconds.
CONNECTION_ERROR_OLD = re.compile(
    r"Consumer: Connection Error: (.*?)\.? Trying again in (\d+) seconds\.\.\.\s*$", re.S
)
_OTHER_STEPS = ("Will retry using next failover.", "Trying to reconnect...")
_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}

LEVELS = {"WARNING": "warning", "INFO": "info", "ERROR": "error", "DEBUG": "debug", "CRITICAL": "critical"}


def is_record_start(line: bytes) -> bool:
    return line.startswith(b"[") and _PREFIX_BYTES.match(line) is not None


def continues(first: bytes, line: bytes) -> bool:
    """Tracebacks and multi-line messages continue until the next prefixed line."""
    return not (line.startswith(b"[") and _PREFIX_BYTES.match(line) is not None)


def _task_event(doc: Document, msg: str) -> dict[str, Any] | None:
    """``Task name[id] ...``: the task life-cycle messages of Celery >= 5.1 (and 4.x's succeeded,
    2.5/3.0's ``raised exception:``), then 2.5-4.x's DEBUG ``Task accepted: name[id] pid:N``."""
    m = TASK_EVENT.match(msg)
    if m is None:
        if msg.startswith("Task accepted: ") and (a := ACCEPTED.match(msg)) is not None:
            return {"name": a.group(1), "id": a.group(2), "state": "started"}
        return None
    task: dict[str, Any] = {"name": m.group(1), "id": m.group(2)}
    rest = m.group(3)
    if rest.startswith("received"):
        task["state"] = "received"
    elif rest.startswith("succeeded in "):
        task["state"] = "succeeded"
        s = SUCCEEDED.match(rest)
        if s is not None:
            try:
                runtime = float(s.group(1))
            except ValueError:
                return task
            task["runtime"] = runtime
            doc["event"] = {"duration": int(runtime * 1e9)}
    elif rest.startswith(
        ("raised unexpected: ", "raised expected: ", "INTERNAL ERROR: ", "raised exception: ")
    ):
        kind, _, exc = rest.partition(": ")
        task["state"] = "failed"
        task["exception"] = exc.split("\n", 1)[0]
        doc["event"] = {"outcome": "failure"}
        if kind == "raised expected":
            task["expected_failure"] = True
    elif rest.startswith("retry: "):
        task["state"] = "retry"
        task["exception"] = rest[7:].split("\n", 1)[0]
    elif rest == "ignored":
        task["state"] = "ignored"
    elif rest.startswith(("rejected", "Rejected")):
        task["state"] = "rejected"
    return task


def _other_message(doc: Document, msg: str) -> dict[str, Any] | None:
    """Older wording, time limits, revokes and broker trouble (first-letter dispatch, then regex)."""
    first = msg[:1]
    if (first == "R" and msg.startswith("Received task: ")) or (
        first == "G" and msg.startswith("Got task from broker: ")
    ):
        m = RECEIVED_OLD.match(msg)
        if m is not None:
            task = {"name": m.group(1), "id": m.group(2), "state": "received"}
            if m.group(3):
                task["eta"] = m.group(3)
            return task
    elif first in ("S", "H") and "time limit" in msg:
        m = TIME_LIMIT.match(msg)
        if m is not None:
            doc["event"] = {"outcome": "failure"}
            return {
                "name": m.group(3),
                "id": m.group(4),
                "state": "time_limit_exceeded",
                "time_limit": {"type": m.group(1).lower(), "seconds": float(m.group(2))},
            }
    elif first == "D" and msg.startswith("Discarding revoked task: "):
        m = REVOKED.match(msg)
        if m is not None:
            return {"name": m.group(1), "id": m.group(2), "state": "revoked"}
    elif (first == "c" and msg.startswith("consumer: ")) or (
        first == "C" and msg.startswith("Consumer: Connection Error: ")
    ):
        _broker_message(doc, msg)
    return None


def _retry_step(msg: str) -> tuple[str, dict[str, Any] | None]:
    """Split ``CONNECTION_ERROR``'s last line off: ``(the rest, retry fields or None)``."""
    body, nl, step = msg.rstrip().rpartition("\n")
    if not nl:
        return msg, None
    if step in _OTHER_STEPS:
        return body, None
    m = RETRY_STEP.match(step) if step.startswith("Trying again ") else None
    if m is None:
        return msg, None
    retry: dict[str, Any] = {"delay": float(m.group(1)) * _UNIT_SECONDS[m.group(2)] if m.group(1) else 0.0}
    if m.group(3):
        retry["attempt"] = int(m.group(3))
        retry["max"] = int(m.group(4))
    return body, retry


def _broker_message(doc: Document, msg: str) -> None:
    if msg.startswith("consumer: Cannot connect to "):
        doc["event"] = {"category": ["network"], "type": ["connection", "error"], "outcome": "failure"}
        doc["tags"] = ["broker_connection_error"]
        body, retry = _retry_step(msg)
        m = CANNOT_CONNECT.match(body)
        if m is not None:
            broker: dict[str, Any] = {"url": m.group(1)}
            doc["celery"] = {"broker": broker}
            doc["error"] = {"message": m.group(2)}
            if retry is not None:
                broker["retry"] = retry
    elif msg.startswith("Consumer: Connection Error: "):
        doc["event"] = {"category": ["network"], "type": ["connection", "error"], "outcome": "failure"}
        doc["tags"] = ["broker_connection_error"]
        m = CONNECTION_ERROR_OLD.match(msg)
        if m is not None:
            doc["celery"] = {"broker": {"retry": {"delay": float(m.group(2))}}}
            doc["error"] = {"message": m.group(1)}
    elif msg.startswith("consumer: Connection to broker lost"):
        doc["event"] = {"category": ["network"], "type": ["connection", "error"]}
        doc["tags"] = ["broker_connection_lost"]


def parse(text: str, ctx: ParseContext) -> Document:
    first, nl, more = text.partition("\n")
    m = PREFIX.match(first)
    if m is None:
        return unparsed(text)
    date_time, ms, level, process = m.groups()
    msg = first[m.end() :]
    ts = ctx.times.local(date_time, ms)
    doc: Document = {
        "@timestamp": ts,
        "log": {"level": LEVELS.get(level) or level.lower()},
        "message": msg,
        "process": {"name": process},
    }
    if ts is None:
        doc["@timestamp"] = ctx.ingest_time
        doc["tags"] = ["invalid_timestamp"]
    if nl:
        extra, trace = split_stack_trace(more.split("\n"))
        if extra:
            msg = f"{msg}\n{extra}"
        if trace is not None:
            etype, emsg = exception_from_trace(trace)
            doc["error"] = {"stack_trace": trace, "type": etype, "message": emsg}
        doc["message"] = msg = msg.rstrip("\n")
    task: dict[str, Any] | None
    if msg.startswith("Task "):
        task = _task_event(doc, msg)
    elif "]: " in msg and (m2 := TASK_PREFIXED.match(msg)) is not None:
        # worker_task_log_format: "name[id]: message" - a record logged inside a task.
        task = {"name": m2.group(1), "id": m2.group(2)}
        doc["message"] = m2.group(3)
    else:
        task = _other_message(doc, msg)
    if task is not None:
        celery = doc.get("celery")
        if celery is None:
            doc["celery"] = {"task": task}
        else:
            celery["task"] = task
        if task.get("state") == "failed" and "error" not in doc:
            doc["error"] = {"message": task.get("exception")}
    return doc


PARSER = Parser(name="celery", dataset="celery.worker", continues=continues, parse=parse)
