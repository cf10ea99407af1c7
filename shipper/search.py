"""``shipper search`` and ``shipper summary``: investigate without Kibana.

Only ``_search`` with ``query_string``/``term`` and ``_count`` are used (no aggregations), so the
same commands work on Elasticsearch and on the local Elasticsearch-compatible server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ShipperError

INDEX = "logs-*"
LEVELS = ("critical", "error", "warning", "info", "debug")
DATASETS = ("celery.worker", "rabbitmq.log", "celery.events")


class SearchError(ShipperError):
    """The search could not run (server unreachable, bad query)."""


def _query(query: str, task_id: str | None, dataset: str | None, kql: bool = False) -> dict[str, Any]:
    must: list[dict[str, Any]] = []
    if kql and query and query != "*":
        from .kql import to_query

        must.append(to_query(query))
    elif query and query != "*":
        must.append({"query_string": {"query": query, "default_field": "message"}})
    if task_id:
        must.append({"term": {"celery.task.id": task_id}})
    if dataset:
        must.append({"term": {"event.dataset": dataset}})
    return {"bool": {"must": must}} if must else {"match_all": {}}


def _where(hosts: Sequence[str]) -> str:
    from .redact import redact_url

    return f" at {', '.join(redact_url(h) for h in hosts)}" if hosts else ""


def search(
    client: Any,
    query: str = "*",
    *,
    task_id: str | None = None,
    dataset: str | None = None,
    size: int = 20,
    hosts: Sequence[str] = (),
) -> list[dict[str, Any]]:
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    try:
        client.indices.refresh(index=INDEX, allow_no_indices=True, ignore_unavailable=True)
        resp = client.search(
            index=INDEX,
            query=_query(query, task_id, dataset),
            size=size,
            sort=[{"@timestamp": {"order": "asc" if task_id else "desc"}}],
            allow_no_indices=True,
            ignore_unavailable=True,
        )
    except ApiError as exc:
        raise SearchError(f"search failed: {exc.message}") from None
    except TransportError as exc:
        raise SearchError(f"cannot reach Elasticsearch{_where(hosts)}: {exc}") from None
    return [hit["_source"] for hit in resp["hits"]["hits"]]


def search_line(doc: dict[str, Any]) -> str:
    """One hit as one terminal-safe line: time, level, dataset, message (escaped)."""
    from .terminal import printable

    log = doc.get("log")
    event = doc.get("event")
    level = (log.get("level") if isinstance(log, dict) else None) or "-"
    ds = (event.get("dataset") if isinstance(event, dict) else None) or "-"
    message = doc.get("message")
    text = f"{doc.get('@timestamp', '-')} {printable(level):7s} {printable(ds):13s} "
    return printable(text) + printable("" if message is None else message).rstrip()


def count(client: Any, query: dict[str, Any]) -> int:
    resp = client.count(index=INDEX, query=query, allow_no_indices=True, ignore_unavailable=True)
    return int(resp["count"])


def summary(client: Any, hosts: Sequence[str] = ()) -> list[str]:
    from elastic_transport import TransportError

    try:
        client.indices.refresh(index=INDEX, allow_no_indices=True, ignore_unavailable=True)
        lines = [f"{'dataset':15s} {'total':>7s} " + " ".join(f"{lvl:>8s}" for lvl in LEVELS)]
        for ds in DATASETS:
            total = count(client, {"term": {"event.dataset": ds}})
            if not total:
                continue
            per = [
                count(
                    client,
                    {"bool": {"must": [{"term": {"event.dataset": ds}}, {"term": {"log.level": lvl}}]}},
                )
                for lvl in LEVELS
            ]
            lines.append(f"{ds:15s} {total:7d} " + " ".join(f"{n:8d}" for n in per))
        failed = search(client, "celery.task.state:failed", size=10)
        lines.append("")
        lines.append(f"failed tasks (latest {len(failed)}):")
        for doc in failed:
            task = (doc.get("celery") or {}).get("task") or {}
            err = doc.get("error") or {}
            lines.append(
                f"  {doc.get('@timestamp')} {task.get('name')}[{task.get('id')}] "
                f"{err.get('type') or ''}: {err.get('message') or task.get('exception') or ''}"
            )
        alarms = search(
            client,
            "tags:authentication_failure OR tags:memory_alarm OR tags:disk_alarm "
            "OR tags:connection_closed_abruptly OR tags:missed_heartbeats",
            size=10,
        )
        if alarms:
            lines.append("")
            lines.append("broker trouble (latest):")
            lines.extend(
                f"  {d.get('@timestamp')} {' / '.join(d.get('message', '').split(chr(10)))}" for d in alarms
            )
        return lines
    except TransportError as exc:
        raise SearchError(f"cannot reach Elasticsearch{_where(hosts)}: {exc}") from None
