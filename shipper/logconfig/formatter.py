"""ECS JSON formatter on top of python-json-logger's orjson formatter.

Why a subclass of :class:`pythonjsonlogger.orjson.OrjsonFormatter` and not of ``logging.Formatter``:
python-json-logger already owns the awkward parts of the record protocol (dict messages, cached
``exc_text``, ``stack_info``) and its ``add_fields`` hook is the documented place to shape the
output. We only replace ``add_fields`` with a version that writes nested ECS objects directly,
which is both what Elasticsearch maps most reliably and faster than renaming flat keys.

Output is nested (``{"log": {"level": "info"}}``), never dotted keys: some Elasticsearch-compatible
servers do not expand dotted keys, and nested objects mean the same thing everywhere.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from .celery_fields import task_fields_from_data

ECS_VERSION = "8.11.0"

#: Record attributes our filter sets; they become ``celery.*`` fields, never generic extras.
CONTEXT_ATTRS = ("celery_task_id", "celery_task_name", "celery_task_retries", "celery_worker_hostname")

#: Attributes that are part of the LogRecord protocol (plus Python 3.12's asyncio ``taskName``, which
#: is not a Celery task name) or that we map ourselves: everything else on a record is a user extra.
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | frozenset(CONTEXT_ATTRS) | {"taskName", "message", "asctime"}

_LEVELS = {
    "CRITICAL": "critical",
    "ERROR": "error",
    "WARNING": "warning",
    "INFO": "info",
    "DEBUG": "debug",
}


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict without overwriting fields the formatter already wrote."""
    *parents, leaf = dotted.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            return
        node = child
    if leaf not in node:
        node[leaf] = value


class EcsJsonFormatter(OrjsonFormatter):
    """Format records as one-line ECS JSON documents.

    Every document has ``@timestamp`` (UTC, millisecond ISO 8601), ``log.level``, ``log.logger``,
    ``message``, ``process.*``, ``host.hostname``, ``service.name``, ``event.dataset`` and
    ``ecs.version``; exceptions become ``error.type`` / ``error.message`` / ``error.stack_trace``.
    Records carrying Celery task context (see :class:`CeleryContextFilter`) get ``celery.task.*``
    and ``celery.worker.hostname``; Celery's own ``extra={'data': ...}`` on task life-cycle messages
    becomes ``celery.task.state`` / ``celery.task.runtime`` / ``event.duration``.

    Task ``args``/``kwargs`` reprs may hold personal data and are dropped unless
    ``include_task_args`` is true.
    """

    def __init__(
        self,
        *args: Any,
        service_name: str = "celery",
        dataset: str = "celery.worker",
        hostname: str | None = None,
        include_task_args: bool = False,
        include_origin: bool = True,
        static_fields: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.service_name = service_name
        self.dataset = dataset
        self.hostname = hostname or socket.gethostname()
        self.include_task_args = include_task_args
        self.include_origin = include_origin
        self.extra_static = dict(static_fields or {})
        self._ts_second = -1
        self._ts_prefix = ""

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Encode with orjson; fall back to the stdlib for what orjson refuses.

        orjson rejects lone surrogates (text decoded with ``surrogateescape``) and integers beyond
        64 bits. A log call must never lose its record over that, so those rare records go through
        ``json.dumps``, which escapes them.
        """
        try:
            return orjson.dumps(log_data, default=self.json_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            return json.dumps(log_data, default=repr, ensure_ascii=True, separators=(",", ":"))

    def _timestamp(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._ts_second:
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._ts_second = second
        return f"{self._ts_prefix}.{int(msecs):03d}Z"

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log: dict[str, Any] = {
            "level": _LEVELS.get(record.levelname) or record.levelname.lower(),
            "logger": record.name,
        }
        if self.include_origin:
            log["origin"] = {
                "file": {"name": record.filename, "line": record.lineno},
                "function": record.funcName,
            }
        log_data["@timestamp"] = self._timestamp(record.created, record.msecs)
        log_data["log"] = log
        log_data["message"] = record.message
        log_data["process"] = {
            "pid": record.process,
            "name": record.processName,
            "thread": {"name": record.threadName},
        }
        log_data["host"] = {"hostname": self.hostname}
        log_data["service"] = {"name": self.service_name}
        log_data["event"] = {"dataset": self.dataset}
        log_data["ecs"] = {"version": ECS_VERSION}

        attrs = record.__dict__
        celery: dict[str, Any] = {}
        task_id = attrs.get("celery_task_id")
        if task_id is not None:
            task = celery["task"] = {"id": task_id, "name": attrs.get("celery_task_name")}
            retries = attrs.get("celery_task_retries")
            if retries is not None:
                task["retries"] = retries
        worker = attrs.get("celery_worker_hostname")
        if worker:
            celery["worker"] = {"hostname": worker}

        extras = attrs.keys() - _NOT_EXTRA
        if "data" in extras:
            mapped = task_fields_from_data(record.msg, attrs["data"], self.include_task_args)
            if mapped is not None:
                extras.discard("data")
                task = celery.setdefault("task", {})
                for key, value in mapped.task.items():
                    task.setdefault(key, value)
                if mapped.duration_ns is not None:
                    log_data["event"]["duration"] = mapped.duration_ns
        if celery:
            log_data["celery"] = celery

        exc_info = record.exc_info
        stack_trace = message_dict.pop("exc_info", None)
        if exc_info and exc_info[0] is not None:
            exc_type, exc = exc_info[0], exc_info[1]
            log_data["error"] = {
                "type": f"{exc_type.__module__}.{exc_type.__qualname__}"
                if exc_type.__module__ != "builtins"
                else exc_type.__qualname__,
                "message": str(exc),
                "stack_trace": stack_trace,
            }
        elif stack_trace:
            log_data["error"] = {"stack_trace": stack_trace}
        stack_info = message_dict.pop("stack_info", None)
        if stack_info:
            _put(log_data, "log.origin.stack_trace", stack_info)

        for key, value in self.extra_static.items():
            _put(log_data, key, value)
        for key, value in message_dict.items():
            _put(log_data, str(key), value)
        for key in extras:
            if not key.startswith("_"):
                _put(log_data, key, attrs[key])
