"""Kibana saved objects (data views, saved searches, a dashboard) and their import.

Defined here, exported to ``kibana/saved_objects.ndjson`` (``shipper kibana export``); a test keeps
the file and this module identical. ``shipper kibana import`` posts the file to Kibana's saved
objects API with ``overwrite=true``; Kibana answers 200 even when objects fail, so the body is read
and any failure makes the command exit non-zero.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import ShipperError

PREFIX = "celery-log-shipper"
DATA_VIEWS = {
    "celery": ("Celery workers", "logs-celery.worker-*"),
    "rabbitmq": ("RabbitMQ", "logs-rabbitmq.log-*"),
    "all": ("Celery and RabbitMQ", "logs-celery.worker-*,logs-rabbitmq.log-*"),
    "events": ("Celery events", "logs-celery.events-*"),
    "lifecycle": ("Celery events and worker logs", "logs-celery.events-*,logs-celery.worker-*"),
}


@dataclass(frozen=True)
class SavedSearch:
    slug: str
    title: str
    view: str
    kql: str
    columns: tuple[str, ...]
    ascending: bool = False


SEARCHES = (
    SavedSearch(
        "all-errors",
        "All errors (Celery and RabbitMQ)",
        "all",
        'log.level: ("error" or "critical")',
        ("event.dataset", "log.level", "celery.task.name", "message"),
    ),
    SavedSearch(
        "failed-tasks",
        "Celery: failed tasks",
        "celery",
        'celery.task.state: "failed"',
        ("celery.task.name", "celery.task.id", "error.type", "error.message"),
    ),
    SavedSearch(
        "retried-tasks",
        "Celery: retried tasks",
        "celery",
        'celery.task.state: "retry"',
        ("celery.task.name", "celery.task.id", "celery.task.exception"),
    ),
    SavedSearch(
        "slow-tasks",
        "Celery: tasks slower than 10 s",
        "celery",
        "celery.task.runtime > 10",
        ("celery.task.name", "celery.task.runtime", "celery.task.id"),
    ),
    SavedSearch(
        "task-timeline",
        "Celery: one task's timeline (edit the id)",
        "all",
        "celery.task.id: *",
        ("celery.task.state", "process.name", "log.logger", "message"),
        ascending=True,
    ),
    SavedSearch(
        "time-limits",
        "Celery: time limits exceeded",
        "celery",
        'celery.task.state: "time_limit_exceeded"',
        ("celery.task.name", "celery.task.time_limit.type", "celery.task.time_limit.seconds"),
    ),
    SavedSearch(
        "broker-connection-errors",
        "Celery/kombu: broker connection errors",
        "celery",
        'tags: ("broker_connection_error" or "broker_connection_lost")',
        ("celery.broker.url", "celery.broker.retry.attempt", "message"),
    ),
    SavedSearch(
        "rabbitmq-alarms",
        "RabbitMQ: memory and disk alarms",
        "rabbitmq",
        'tags: ("memory_alarm" or "disk_alarm")',
        ("rabbitmq.alarm.type", "rabbitmq.alarm.state", "message"),
    ),
    SavedSearch(
        "rabbitmq-abrupt-closes",
        "RabbitMQ: connections closed abruptly or missed heartbeats",
        "rabbitmq",
        'tags: ("connection_closed_abruptly" or "missed_heartbeats")',
        ("source.ip", "user.name", "rabbitmq.connection.close_reason"),
    ),
    SavedSearch(
        "task-lifecycle",
        "Celery: task life cycle, events and log lines (edit the id)",
        "lifecycle",
        "celery.task.id: *",
        ("celery.task.name", "celery.task.state", "event.dataset", "message"),
        ascending=True,
    ),
    SavedSearch(
        "rabbitmq-auth-failures",
        "RabbitMQ: authentication failures",
        "rabbitmq",
        'tags: "authentication_failure"',
        ("user.name", "source.ip", "rabbitmq.auth.reason"),
    ),
)


def _id(slug: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PREFIX}/{slug}"))


def objects() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, (name, pattern) in DATA_VIEWS.items():
        out.append(
            {
                "id": f"{PREFIX}-{key}",
                "type": "index-pattern",
                "managed": False,
                "references": [],
                "coreMigrationVersion": "8.8.0",
                "typeMigrationVersion": "8.0.0",
                "attributes": {
                    "title": pattern,
                    "name": name,
                    "timeFieldName": "@timestamp",
                    "fieldAttrs": "{}",
                    "fields": "[]",
                    "runtimeFieldMap": "{}",
                    "sourceFilters": "[]",
                },
            }
        )
    for s in SEARCHES:
        source = {
            "query": {"query": s.kql, "language": "kuery"},
            "filter": [],
            "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
        }
        out.append(
            {
                "id": _id(s.slug),
                "type": "search",
                "managed": False,
                "coreMigrationVersion": "8.8.0",
                "typeMigrationVersion": "8.0.0",
                "attributes": {
                    "title": s.title,
                    "description": f"KQL: {s.kql}",
                    "columns": list(s.columns),
                    "sort": [["@timestamp", "asc" if s.ascending else "desc"]],
                    "grid": {},
                    "hideChart": False,
                    "isTextBasedQuery": False,
                    "timeRestore": False,
                    "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
                },
                "references": [
                    {
                        "id": f"{PREFIX}-{s.view}",
                        "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
                        "type": "index-pattern",
                    }
                ],
            }
        )
    panels, refs = [], []
    for i, s in enumerate(SEARCHES):
        panels.append(
            {
                "type": "search",
                "panelIndex": str(i),
                "embeddableConfig": {},
                "panelRefName": f"panel_{i}",
                "gridData": {"x": (i % 2) * 24, "y": (i // 2) * 15, "w": 24, "h": 15, "i": str(i)},
            }
        )
        refs.append({"name": f"panel_{i}", "type": "search", "id": _id(s.slug)})
    out.append(
        {
            "id": _id("dashboard"),
            "type": "dashboard",
            "managed": False,
            "coreMigrationVersion": "8.8.0",
            "typeMigrationVersion": "8.9.0",
            "attributes": {
                "title": "Celery and RabbitMQ: what went wrong",
                "description": "All saved searches together",
                "panelsJSON": json.dumps(panels),
                "timeRestore": False,
                "version": 1,
                "optionsJSON": json.dumps(
                    {"useMargins": True, "syncColors": False, "hidePanelTitles": False}
                ),
                "kibanaSavedObjectMeta": {
                    "searchSourceJSON": json.dumps(
                        {"query": {"query": "", "language": "kuery"}, "filter": []}
                    )
                },
            },
            "references": refs,
        }
    )
    return out


def to_ndjson(objs: list[dict[str, Any]] | None = None) -> str:
    return "".join(json.dumps(o, sort_keys=True) + "\n" for o in (objs if objs is not None else objects()))


class KibanaError(ShipperError):
    """Kibana refused the import, or some objects failed."""


@dataclass(frozen=True)
class ImportResult:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    failed: tuple[str, ...]


#: Kibana space ids: lowercase letters, digits, '_' and '-' (anything else would change the path).
_SPACE_RE = re.compile(r"[a-z0-9_\-]{1,100}")


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def import_objects(
    url: str, ndjson: str, space: str | None = None, auth: str | None = None, timeout: float = 60.0
) -> ImportResult:
    """POST the objects to ``/api/saved_objects/_import?overwrite=true`` and read every result.

    Credentials (``auth``, or ``user:password@`` in ``url`` when ``auth`` is None) are sent to that
    one address only: a redirect is an error, never followed. ``timeout`` bounds the whole call.
    """
    from .httppost import HttpPostError, post, split_userinfo
    from .redact import redact_url

    shown = redact_url(url)
    if not url.startswith(("http://", "https://")):
        raise KibanaError(f"--url must start with http:// or https://, got {shown!r}")
    if space is not None and not _SPACE_RE.fullmatch(space):
        raise KibanaError(f"--space must be a Kibana space id (a-z, 0-9, '_', '-'), got {space!r}")
    bare, user, password = split_userinfo(url)
    if auth is None and user:
        auth = basic_auth(user, password or "")
    base = bare.rstrip("/") + (f"/s/{space}" if space else "")
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="objects.ndjson"\r\n'
        f"Content-Type: application/ndjson\r\n\r\n{ndjson}\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"kbn-xsrf": "celery-log-shipper", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    if auth:
        headers["Authorization"] = auth
    try:
        resp = post(f"{base}/api/saved_objects/_import?overwrite=true", body, headers, timeout)
    except HttpPostError as exc:
        raise KibanaError(f"Kibana import failed: {exc}") from None
    if resp.status != 200:
        raise KibanaError(f"Kibana refused the import: HTTP {resp.status} {resp.body[:300]!r}")
    try:
        answer = json.loads(resp.body)
    except ValueError:
        raise KibanaError("Kibana answered with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise KibanaError("Kibana answered with JSON that is not an import result")
    return read_result(answer, sent=sum(1 for line in ndjson.splitlines() if line.strip()))


def read_result(answer: dict[str, Any], sent: int) -> ImportResult:
    """Every object sent must be reported imported; anything else is a failure, named."""

    def entries(key: str) -> list[dict[str, Any]]:
        value = answer.get(key)
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

    created: list[str] = []
    updated: list[str] = []
    for r in entries("successResults"):
        label = f"{r.get('type')}/{r.get('id')}"
        (updated if r.get("overwrite") else created).append(label)
    failed = []
    for e in entries("errors"):
        error = e.get("error")
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        failed.append(f"{e.get('type')}/{e.get('id')}: {kind}")
    if answer.get("success") is not True and not failed:
        failed.append("import reported success: false")
    imported = len(created) + len(updated)
    if not failed and imported != sent:
        failed.append(f"Kibana reported {imported} of the {sent} objects sent as imported")
    return ImportResult(tuple(created), tuple(updated), tuple(failed))
