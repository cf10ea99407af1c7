"""Detect the format per record: for inputs that mix Celery text, JSON lines and RabbitMQ logs.

Detection is by the first bytes only (cheap): ``{`` is JSON (RabbitMQ's when it has ``msg`` and an
Erlang ``pid``), ``[YYYY-`` is Celery text, ``YYYY-`` or ``=INFO REPORT`` is RabbitMQ text.

Inside a multi-line text record a line starting with ``{`` is usually no JSON record: Erlang terms
in RabbitMQ reports (``{handshake_error,starting,0,``), the dict reprs of Celery's "unregistered
task" error. Such a line starts a new record only if it IS a JSON log record: one object that
parses and has a log record's key. The parse is tried only for a line that starts with ``{`` and
ends with ``}``, so text records without such lines cost nothing more.
"""

from __future__ import annotations

import orjson

from . import celery_text, json_lines, rabbitmq_json, rabbitmq_text
from .base import Document, ParseContext, Parser, json_object, unparsed

#: Keys of which a JSON log record has at least one (our formatter's ECS output, python-json-logger,
#: structlog, RabbitMQ's JSON: ``time``/``level``/``msg``).
_RECORD_KEYS = frozenset(
    {
        "@timestamp",
        "timestamp",
        "time",
        "asctime",
        "ts",
        "created",
        "message",
        "msg",
        "event",
        "level",
        "levelname",
        "severity",
        "log",
        "log.level",
    }
)


def is_json_record(line: bytes) -> bool:
    """Is this line a JSON log record of its own (not a ``{`` line inside a text record)?"""
    if not line.startswith(b"{") or not line.endswith((b"}", b"}\r")):
        return False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:  # Erlang terms, Python reprs, too deep: part of the record
        return False
    return isinstance(obj, dict) and not _RECORD_KEYS.isdisjoint(obj)


def continues(first: bytes, line: bytes) -> bool:
    if first.startswith(b"{"):
        return False
    if first.startswith(b"["):
        return (
            celery_text.continues(first, line)
            and not rabbitmq_text.is_record_start(line)
            and not (line.startswith(b"{") and is_json_record(line))
        )
    if rabbitmq_text.is_record_start(first):
        return (
            rabbitmq_text.continues(first, line)
            and not celery_text.is_record_start(line)
            and not (line.startswith(b"{") and is_json_record(line))
        )
    return False


def detect(text: str) -> str:
    if text.startswith("{"):
        return "json"
    if text.startswith("["):
        return "celery"
    if text[:1].isdigit() or text.startswith("="):
        return "rabbitmq"
    return "unknown"


def parse_with_dataset(text: str, ctx: ParseContext) -> tuple[Document, str]:
    kind = detect(text)
    if kind == "json":
        obj = json_object(text)
        if obj is None:
            return unparsed(text, "invalid_json"), "celery.worker"
        pid = obj.get("pid")
        if "msg" in obj and isinstance(pid, str) and pid.startswith("<"):
            return rabbitmq_json.to_document(obj, ctx), "rabbitmq.log"
        return json_lines.to_document(obj, ctx), "celery.worker"
    if kind == "celery":
        return celery_text.parse(text, ctx), "celery.worker"
    if kind == "rabbitmq":
        return rabbitmq_text.parse(text, ctx), "rabbitmq.log"
    return unparsed(text), "celery.worker"


def parse(text: str, ctx: ParseContext) -> Document:
    return parse_with_dataset(text, ctx)[0]


PARSER = Parser(name="auto", dataset="celery.worker", continues=continues, parse=parse)
