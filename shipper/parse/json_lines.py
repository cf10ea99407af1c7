"""JSON-lines application logs: our configurator's ECS output, and other JSON loggers.

Documents from ``shipper.logconfig`` are already ECS and pass through (validated: a timestamp and a
message). Other JSON loggers (python-json-logger defaults, structlog, ecs-logging, Celery task
loggers with ``task_id``) get their well-known keys mapped to ECS; anything else is kept under
``json`` so an arbitrary key can never clash with the ECS mapping. Dotted keys are expanded into
objects: some Elasticsearch-compatible servers do not.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import Document, ParseContext, Parser, TimeConverter, json_object, unparsed

#: Top-level ECS field sets that may pass through as they are.
ECS_ROOTS = frozenset(
    {
        "@timestamp",
        "message",
        "log",
        "process",
        "host",
        "service",
        "event",
        "error",
        "ecs",
        "celery",
        "rabbitmq",
        "tags",
        "labels",
        "source",
        "destination",
        "user",
        "trace",
        "transaction",
        "span",
        "http",
        "url",
        "client",
        "server",
        "agent",
        "user_agent",
    }
)

#: Foreign key -> ECS path.
ALIASES = {
    "levelname": "log.level",
    "level": "log.level",
    "severity": "log.level",
    "name": "log.logger",
    "logger": "log.logger",
    "logger_name": "log.logger",
    "msg": "message",
    "event": "message",
    "process": "process.pid",
    "processName": "process.name",
    "thread": "process.thread.id",
    "threadName": "process.thread.name",
    "exc_info": "error.stack_trace",
    "exception": "error.stack_trace",
    "stack_info": "error.stack_trace",
    "task_id": "celery.task.id",
    "task_name": "celery.task.name",
    "hostname": "host.hostname",
    "service": "service.name",
    "filename": "log.origin.file.name",
    "lineno": "log.origin.file.line",
    "funcName": "log.origin.function",
}
TIME_KEYS = ("@timestamp", "timestamp", "time", "asctime", "ts", "created")


def _put(doc: Document, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            if child is not None:
                return  # a scalar is in the way; keep what is there
            child = node[part] = {}
        node = child
    node.setdefault(leaf, value)


def expand_dots(obj: dict[str, Any]) -> dict[str, Any]:
    """``{"log.level": "info"}`` -> ``{"log": {"level": "info"}}``, recursively."""
    if not any("." in k for k in obj) and not any(isinstance(v, dict) for v in obj.values()):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            value = expand_dots(value)
        if "." in key and key != "@timestamp":
            _put(out, key, value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            for k2, v2 in value.items():
                out[key].setdefault(k2, v2)
        else:
            out[key] = value
    return out


def normalize_timestamp(value: Any, times: TimeConverter) -> str | None:
    """Accept ISO 8601 (with or without offset), Python's asctime, or epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        import datetime as dt

        try:
            return (
                dt.datetime.fromtimestamp(float(value), dt.UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or len(value) < 19:
        return None
    if value.endswith("Z") and value[10] == "T" and value[:4].isdigit():
        return value  # the common, already-normalised case
    import datetime as dt

    try:
        parsed = dt.datetime.fromisoformat(value.replace(",", "."))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        frac = f"{parsed.microsecond // 1000:03d}"
        return times.local(parsed.strftime("%Y-%m-%d %H:%M:%S"), frac)
    return parsed.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_document(obj: dict[str, Any], ctx: ParseContext) -> Document:
    if "ecs" in obj and type(obj.get("log")) is dict and isinstance(obj.get("message"), str):
        # Already ECS with nested objects (shipper.logconfig): pass through; only check the time,
        # and that no key needs mapping: dotted keys, and top-level keys Elasticsearch refuses in a
        # document (``_id``, ``_index``... any ``_`` key) or the shipper sets (``data_stream``),
        # which the mapping below moves under ``json``. One join and three C-level scans.
        ts = obj.get("@timestamp")
        keys = "\n".join(obj)
        if (
            isinstance(ts, str)
            and ts.endswith("Z")
            and len(ts) >= 20
            and ts[10] == "T"
            and "." not in keys
            and "\n_" not in keys
            and keys[:1] != "_"
            and "data_stream" not in obj
        ):
            return obj
    obj = expand_dots(obj)
    doc: Document = {}
    foreign: dict[str, Any] = {}
    ts_value = None
    for key in TIME_KEYS:
        if key in obj:
            ts_value = obj[key]
            break
    for key, value in obj.items():
        if key in TIME_KEYS:
            continue
        if key in ALIASES and not (key in ECS_ROOTS and isinstance(value, dict)):
            _put(doc, ALIASES[key], value)
        elif key in ECS_ROOTS:
            if isinstance(value, dict) and isinstance(doc.get(key), dict):
                for k2, v2 in value.items():
                    doc[key].setdefault(k2, v2)
            else:
                doc[key] = value
        else:
            foreign[key] = value
    tags: list[str] = []
    ts = normalize_timestamp(ts_value, ctx.times) if ts_value is not None else None
    if ts is None:
        ts = ctx.ingest_time
        tags.append("invalid_timestamp" if ts_value is not None else "missing_timestamp")
    doc["@timestamp"] = ts
    log = doc.get("log")
    if isinstance(log, dict) and isinstance(log.get("level"), str):
        log["level"] = log["level"].lower()
    message = doc.get("message")
    if not isinstance(message, str):
        doc["message"] = "" if message is None else orjson.dumps(message).decode()
    if foreign:
        doc["json"] = foreign
    if tags:
        existing = doc.get("tags")
        doc["tags"] = ([*existing] if isinstance(existing, list) else []) + tags
    return doc


def parse(text: str, ctx: ParseContext) -> Document:
    obj = json_object(text)
    return unparsed(text, "invalid_json") if obj is None else to_document(obj, ctx)


PARSER = Parser(name="celery_json", dataset="celery.worker", continues=None, parse=parse)
