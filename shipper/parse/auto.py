"""Detect the format per record: for inputs that mix Celery text, JSON lines and RabbitMQ logs.

Detection is by the first bytes only (cheap): ``{`` is JSON (RabbitMQ's when it has ``msg`` and an
Erlang ``pid``), ``[YYYY-`` is Celery text, ``YYYY-`` or ``=INFO REPORT`` is RabbitMQ text.
"""

from __future__ import annotations

from . import celery_text, json_lines, rabbitmq_json, rabbitmq_text
from .base import Document, ParseContext, Parser, json_object, unparsed


def continues(first: bytes, line: bytes) -> bool:
    if first.startswith(b"{"):
        return False
    if first.startswith(b"["):
        return (
            celery_text.continues(first, line)
            and not line.startswith(b"{")
            and not (rabbitmq_text.is_record_start(line))
        )
    if rabbitmq_text.is_record_start(first):
        return (
            rabbitmq_text.continues(first, line)
            and not line.startswith(b"{")
            and not (celery_text.is_record_start(line))
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
