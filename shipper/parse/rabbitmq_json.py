"""RabbitMQ 3.9+ JSON logs (``log.file.formatter = json``): one object per line."""

from __future__ import annotations

from typing import Any

import orjson

from .base import Document, ParseContext, Parser, json_object, unparsed, with_offset
from .rabbitmq_messages import enrich
from .rabbitmq_text import ecs_level

#: Keys mapped to ECS; everything else is kept under rabbitmq.log.
_MAPPED = frozenset({"time", "level", "msg", "pid"})


def to_document(obj: dict[str, Any], ctx: ParseContext) -> Document:
    tags: list[str] = []
    time = obj.get("time")
    ts = None
    if isinstance(time, str) and len(time) >= 19:
        # "2026-11-24 21:00:48.605661+00:00": seconds, fraction digits, then the offset.
        date_time, _, rest = time.partition(".")
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        ts = with_offset(date_time.replace("T", " "), rest[:n] or "000", rest[n:] or "Z")
    if ts is None:
        tags.append("invalid_timestamp")
    level = str(obj.get("level", "info")).lower()
    msg = obj.get("msg")
    message = msg if isinstance(msg, str) else orjson.dumps(msg).decode() if msg is not None else ""
    extra = {k: v for k, v in obj.items() if k not in _MAPPED}
    log_fields: dict[str, Any] = {}
    if obj.get("pid") is not None:
        log_fields["pid"] = str(obj["pid"])
    for key, value in extra.items():
        log_fields[key] = (
            value if isinstance(value, str | int | float | bool) else orjson.dumps(value).decode()
        )
    doc: Document = {
        "@timestamp": ts or ctx.ingest_time,
        "log": {"level": ecs_level(level)},
        "message": message,
        "rabbitmq": {"log": log_fields},
    }
    if tags:
        doc["tags"] = tags
    enrich(doc, message)
    return doc


def parse(text: str, ctx: ParseContext) -> Document:
    obj = json_object(text)
    return unparsed(text, "invalid_json") if obj is None else to_document(obj, ctx)


PARSER = Parser(name="rabbitmq_json", dataset="rabbitmq.log", continues=None, parse=parse)
