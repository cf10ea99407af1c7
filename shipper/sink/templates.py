"""Index templates, ECS mappings and the ILM policy that ``shipper setup`` installs.

One template per dataset, ``logs-{dataset}-*``, priority 501 (above the built-in ``logs-*-*`` at
100 and the usual 500 of integrations), with explicit mappings for every field the parsers and the
configurator emit, so a saved search never meets a field mapped as ``text`` by accident.

Every ``keyword`` has ``ignore_above`` (:data:`KEYWORD_IGNORE_ABOVE` characters): Lucene refuses a
term longer than 32,766 bytes, and Elasticsearch then refuses the *whole document*, so a 1 MB task
name or a 40 KB ``error.type`` (anyone can log one) would otherwise be dead-lettered. A longer value
stays in ``_source`` and is shown, it is only not searchable by exact value. 1,024 characters are
at most 4,096 bytes of UTF-8, far below the limit.
"""

from __future__ import annotations

from typing import Any

DATASETS = ("celery.worker", "rabbitmq.log", "celery.events", "shipper.log")
TEMPLATE_PRIORITY = 501
MANAGED_BY = "celery-log-shipper"

#: ``ignore_above`` of every keyword (characters; ECS uses 1,024 too).
KEYWORD_IGNORE_ABOVE = 1024
#: Lucene's limit for one term, in bytes of UTF-8.
LUCENE_MAX_TERM_BYTES = 32_766

#: Every field we emit, by ECS-style dotted path (keywords get ``ignore_above`` below).
_FIELDS: dict[str, dict[str, Any]] = {
    "@timestamp": {"type": "date"},
    "message": {"type": "text"},
    "tags": {"type": "keyword"},
    "labels": {"type": "object"},
    "ecs.version": {"type": "keyword"},
    "log.level": {"type": "keyword"},
    "log.logger": {"type": "keyword"},
    "log.file.path": {"type": "keyword"},
    "log.offset": {"type": "long"},
    "log.origin.file.name": {"type": "keyword"},
    "log.origin.file.line": {"type": "long"},
    "log.origin.function": {"type": "keyword"},
    "log.origin.stack_trace": {"type": "text"},
    "process.pid": {"type": "long"},
    "process.name": {"type": "keyword"},
    "process.thread.name": {"type": "keyword"},
    "process.thread.id": {"type": "long"},
    "host.hostname": {"type": "keyword"},
    "service.name": {"type": "keyword"},
    "event.dataset": {"type": "keyword"},
    "event.original": {"type": "keyword", "index": False, "doc_values": False},
    "event.duration": {"type": "long"},
    "event.outcome": {"type": "keyword"},
    "event.action": {"type": "keyword"},
    "event.category": {"type": "keyword"},
    "event.type": {"type": "keyword"},
    "event.created": {"type": "date"},
    "error.type": {"type": "keyword"},
    "error.message": {"type": "text"},
    "error.stack_trace": {"type": "text"},
    "user.name": {"type": "keyword"},
    "source.ip": {"type": "keyword"},
    "source.port": {"type": "long"},
    "destination.ip": {"type": "keyword"},
    "destination.port": {"type": "long"},
    "data_stream.type": {"type": "constant_keyword"},
    "data_stream.dataset": {"type": "constant_keyword"},
    "data_stream.namespace": {"type": "constant_keyword"},
    "celery.task.id": {"type": "keyword"},
    "celery.task.name": {"type": "keyword"},
    "celery.task.state": {"type": "keyword"},
    "celery.task.runtime": {"type": "double"},
    "celery.task.retries": {"type": "long"},
    "celery.task.exception": {"type": "text"},
    "celery.task.expected_failure": {"type": "boolean"},
    "celery.task.eta": {"type": "keyword"},
    "celery.task.args": {"type": "keyword", "index": False, "doc_values": False},
    "celery.task.kwargs": {"type": "keyword", "index": False, "doc_values": False},
    "celery.task.time_limit.type": {"type": "keyword"},
    "celery.task.time_limit.seconds": {"type": "double"},
    "celery.task.queue": {"type": "keyword"},
    "celery.task.routing_key": {"type": "keyword"},
    "celery.task.result": {"type": "keyword", "index": False, "doc_values": False},
    "celery.worker.hostname": {"type": "keyword"},
    "celery.broker.url": {"type": "keyword"},
    "celery.broker.retry.attempt": {"type": "long"},
    "celery.broker.retry.max": {"type": "long"},
    "celery.broker.retry.delay": {"type": "double"},
    "celery.event.type": {"type": "keyword"},
    "celery.event.uuid": {"type": "keyword"},
    "celery.event.problems": {"type": "keyword"},
    "rabbitmq.log.pid": {"type": "keyword"},
    "rabbitmq.log.domain": {"type": "keyword"},
    "rabbitmq.connection.pid": {"type": "keyword"},
    "rabbitmq.connection.name": {"type": "keyword"},
    "rabbitmq.connection.close_reason": {"type": "text"},
    "rabbitmq.connection.heartbeat_timeout": {"type": "long"},
    "rabbitmq.vhost": {"type": "keyword"},
    "rabbitmq.channel.number": {"type": "long"},
    "rabbitmq.alarm.type": {"type": "keyword"},
    "rabbitmq.alarm.state": {"type": "keyword"},
    "rabbitmq.auth.mechanism": {"type": "keyword"},
    "rabbitmq.auth.reason": {"type": "text"},
    # Foreign JSON loggers' own keys: kept in _source, not indexed, so they cannot clash.
    "json": {"type": "object", "enabled": False},
}


FIELDS: dict[str, dict[str, Any]] = {
    path: {**mapping, "ignore_above": KEYWORD_IGNORE_ABOVE} if mapping["type"] == "keyword" else mapping
    for path, mapping in _FIELDS.items()
}


def properties(fields: dict[str, dict[str, Any]] = FIELDS) -> dict[str, Any]:
    """Dotted paths to nested ``properties``."""
    root: dict[str, Any] = {}
    for path, mapping in fields.items():
        parts = path.split(".") if path != "@timestamp" else [path]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = dict(mapping)
    return root


def index_template(
    dataset: str,
    mode: str,
    namespace_pattern: str = "*",
    ilm_policy: str | None = None,
    data_stream_fields: bool = True,
) -> dict[str, Any]:
    fields = (
        FIELDS if data_stream_fields else {k: v for k, v in FIELDS.items() if not k.startswith("data_stream")}
    )
    settings: dict[str, Any] = {}
    if ilm_policy:
        settings["index.lifecycle.name"] = ilm_policy
    body: dict[str, Any] = {
        "index_patterns": [f"logs-{dataset}-{namespace_pattern}"],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "mappings": {"dynamic": True, "date_detection": False, "properties": properties(fields)},
        },
        "_meta": {"managed_by": MANAGED_BY, "dataset": dataset},
    }
    if settings:
        body["template"]["settings"] = settings
    if mode == "data_stream":
        body["data_stream"] = {}
    return body


def ilm_policy(max_age: str, max_primary_shard_size: str, delete_after_days: int) -> dict[str, Any]:
    return {
        "policy": {
            "phases": {
                "hot": {
                    "actions": {
                        "rollover": {"max_age": max_age, "max_primary_shard_size": max_primary_shard_size}
                    }
                },
                "delete": {"min_age": f"{delete_after_days}d", "actions": {"delete": {}}},
            },
            "_meta": {"managed_by": MANAGED_BY},
        }
    }
