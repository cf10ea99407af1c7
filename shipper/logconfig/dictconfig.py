"""A ``logging.config.dictConfig`` dictionary for services that are not Celery workers.

Web apps that enqueue tasks log next to the workers; with the same formatter their lines land in
the same data stream with the same field names.
"""

from __future__ import annotations

from typing import Any


def dict_config(
    service_name: str,
    *,
    level: str = "INFO",
    filename: str | None = None,
    dataset: str | None = None,
    kombu_level: str | None = None,
    include_origin: bool | None = None,
    spec_strict: bool = False,
) -> dict[str, Any]:
    """Return a dictConfig dict: ECS JSON to ``filename`` (WatchedFileHandler) or to stderr.

    ``dataset``, ``include_origin`` and ``spec_strict`` are :class:`EcsJsonFormatter`'s."""
    handler: dict[str, Any]
    if filename:
        handler = {"class": "shipper.logconfig.handlers.JsonLinesFileHandler", "filename": filename}
    else:
        handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    handler.update(formatter="ecs_json", filters=["celery_context"])
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "ecs_json": {
                "()": "shipper.logconfig.formatter.EcsJsonFormatter",
                "service_name": service_name,
                "dataset": dataset,
                "include_origin": include_origin,
                "spec_strict": spec_strict,
            }
        },
        "filters": {"celery_context": {"()": "shipper.logconfig.context.CeleryContextFilter"}},
        "handlers": {"json": handler},
        "root": {"level": level, "handlers": ["json"]},
    }
    if kombu_level:
        config["loggers"] = {name: {"level": kombu_level} for name in ("kombu", "amqp")}
    return config
