"""``shipper setup``: index templates per dataset and the ILM policy; idempotent.

Mode ``auto`` asks the server: with data streams and ILM it uses data streams
(``logs-celery.worker-default``, rollover by ILM); without them (older clusters, Elasticsearch-
compatible servers such as noida-db) it uses daily indices (``logs-celery.worker-default-2026.11.24``)
and says so. Each object carries a hash of its body in ``_meta``, so a second run compares hashes
and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..config import ElasticsearchConfig
from ..errors import ShipperError
from .templates import DATASETS, MANAGED_BY, ilm_policy, index_template

log = logging.getLogger(__name__)


class SetupError(ShipperError):
    """Elasticsearch refused the templates or the policy, or cannot be reached."""


@dataclass
class SetupResult:
    mode: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _status(exc: Exception) -> int | None:
    meta = getattr(exc, "meta", None)
    return getattr(meta, "status", None)


def detect_mode(client: Any, configured: str) -> tuple[str, str | None]:
    """The index mode to use, and a note when ``auto`` had to fall back."""
    from elasticsearch import ApiError

    if configured != "auto":
        return configured, None
    try:
        client.indices.get_data_stream(name="logs-*")
        client.ilm.get_lifecycle()
    except ApiError as exc:
        status = _status(exc)
        if status in (400, 404, 405, 501):
            return "daily_index", (
                f"the server does not support data streams or ILM (HTTP {status}); "
                "using daily indices logs-<dataset>-<namespace>-YYYY.MM.DD without lifecycle management"
            )
        raise
    return "data_stream", None


def run_setup(client: Any, cfg: ElasticsearchConfig) -> SetupResult:
    from elastic_transport import TransportError
    from elasticsearch import ApiError, NotFoundError

    try:
        mode, note = detect_mode(client, cfg.index_mode)
        result = SetupResult(mode=mode)
        if note:
            result.notes.append(note)
        policy_name: str | None = None
        if cfg.ilm.enabled and mode == "data_stream":
            policy_name = cfg.ilm.policy_name
            body = ilm_policy(
                cfg.ilm.rollover_max_age, cfg.ilm.rollover_max_primary_shard_size, cfg.ilm.delete_after_days
            )
            digest = _hash(body)
            body["policy"]["_meta"]["hash"] = digest
            name = f"ilm/{policy_name}"
            try:
                existing = client.ilm.get_lifecycle(name=policy_name).body
                current = existing.get(policy_name, {}).get("policy", {}).get("_meta", {}).get("hash")
            except NotFoundError:
                current, existing = None, None
            if current == digest:
                result.unchanged.append(name)
            else:
                client.ilm.put_lifecycle(name=policy_name, policy=body["policy"])
                (result.updated if existing else result.created).append(name)
        for dataset in DATASETS:
            name = f"{MANAGED_BY}-{dataset}"
            body = index_template(
                dataset, mode, ilm_policy=policy_name, data_stream_fields=mode == "data_stream"
            )
            digest = _hash(body)
            body["_meta"]["hash"] = digest
            try:
                existing = client.indices.get_index_template(name=name).body
                templates = existing.get("index_templates", [])
                current = templates[0]["index_template"].get("_meta", {}).get("hash") if templates else None
            except NotFoundError:
                current, templates = None, []
            label = f"index_template/{name}"
            if current == digest:
                result.unchanged.append(label)
                continue
            client.indices.put_index_template(name=name, **body)
            (result.updated if templates else result.created).append(label)
        return result
    except ApiError as exc:
        raise SetupError(f"Elasticsearch refused the setup: {_status(exc)} {exc.message}") from None
    except TransportError as exc:
        from ..redact import redact_text, redact_url

        hosts = ", ".join(redact_url(h) for h in cfg.hosts)
        raise SetupError(f"cannot reach Elasticsearch at {hosts}: {redact_text(str(exc))}") from None
