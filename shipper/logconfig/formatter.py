"""ECS JSON formatter on top of python-json-logger's orjson formatter.

Why a subclass of :class:`pythonjsonlogger.orjson.OrjsonFormatter` and not of ``logging.Formatter``:
python-json-logger already owns the awkward parts of the record protocol (dict messages, cached
``exc_text``, ``stack_info``) and its ``add_fields`` hook is the documented place to shape the
output. We only replace ``add_fields`` with a version that writes nested ECS objects directly,
which is both what Elasticsearch maps most reliably and faster than renaming flat keys.

Output is nested (``{"log": {"level": "info"}}``), never dotted keys: some Elasticsearch-compatible
servers do not expand dotted keys, and nested objects mean the same thing everywhere. With
``spec_strict=True`` the document takes the shape of the ECS logging spec's examples instead
(``"log.level"`` and ``"ecs.version"`` as dotted top-level keys right after ``@timestamp`` and
``message``, ``service.*``/``event.*``/``trace.*``/``transaction.*``/``span.*`` dotted, no
``log.origin`` unless asked, ``event.dataset`` defaulting to the service name); the README lists
every SHOULD of the spec the default mode leaves on purpose, and why.

Every record becomes exactly one line of valid JSON, whatever it holds: a logging call must never
lose its record nor print "--- Logging error ---". Non-string keys, values orjson refuses (integers
beyond 64 bits, lone surrogates, nesting deeper than 254), NaN (written as null, as orjson does),
an exception whose ``__str__`` raises, even a ``msg % args`` that fails: the fast path is orjson,
the rare rest goes through a sanitising stdlib fallback, and a record that cannot be formatted at
all still gives a minimal document tagged ``log_format_error``.

python-json-logger options: ``static_fields`` and ``defaults`` are honoured (dotted keys nest;
``defaults`` never override a field, ``static_fields`` never override an ECS field),
``reserved_attrs`` adds attributes that are not extras; ``rename_fields``, ``timestamp``,
``prefix``, ``json_indent`` and ``exc_info_as_array`` / ``stack_info_as_array`` are refused with a
``ValueError`` (the field names are ECS's, ``@timestamp`` is always written, and the output must stay
one JSON object per line with ``error.stack_trace`` a string).
"""

from __future__ import annotations

import json
import logging
import math
import re
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


#: python-json-logger options that cannot hold here (see the module docstring).
_REFUSED_OPTIONS = {
    "rename_fields": "the field names are ECS's",
    "rename_fields_keep_missing": "the field names are ECS's",
    "timestamp": "@timestamp is always written",
    "prefix": "every line must be one JSON object",
    "json_indent": "every record must be one line",
    "exc_info_as_array": "error.stack_trace stays a string",
    "stack_info_as_array": "log.origin.stack_trace stays a string",
}
#: Nesting kept by the fallback encoder; deeper values become their (bounded) text.
_MAX_DEPTH = 64
_MAX_FALLBACK_TEXT = 64 * 1024
#: ECS logging spec: ``labels`` keys have no dots (nor ``*`` or ``\``); we also replace any
#: other character that is not a letter, a digit, ``_`` or ``-``.
_LABEL_KEY_RE = re.compile(r"[^\w\-]")
FORMAT_ERROR_TAG = "log_format_error"
#: The dataset of the default (nested) mode: what the shipper's ``celery`` inputs use.
DEFAULT_DATASET = "celery.worker"
#: Record attributes Elastic's APM agent (``elasticapm``) puts on every record, and their ECS field;
#: the spec: "when APM agents add this field to the context, ecs loggers should pick it up".
#: ``elasticapm_service_name`` is dropped: ``service.name`` is configured here.
_APM_ATTRS = {
    "elasticapm_trace_id": "trace.id",
    "elasticapm_transaction_id": "transaction.id",
    "elasticapm_span_id": "span.id",
    "elasticapm_service_environment": "service.environment",
    "elasticapm_service_name": None,
    "elasticapm_labels": "labels",  # merged under the record's own labels
}
#: Top-level objects ``spec_strict`` writes as dotted keys, as the spec's examples do
#: (``"service.name"``, ``"event.dataset"``, ``"trace.id"``, ``"transaction.id"``).
_STRICT_DOTTED_ROOTS = ("service", "event", "trace", "transaction", "span")


def _safe_str(value: Any) -> str:
    """``str(value)``, or its ``repr``, or a placeholder: never raises."""
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__} object>"


def _jsonable(value: Any, default: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` can always encode: string keys
    (the first of colliding keys wins), finite floats (others None, like orjson), bounded depth,
    unknown objects through ``default`` then ``str``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value) if value.bit_length() < 10_000 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if depth >= _MAX_DEPTH:
        return _safe_str(value)[:_MAX_FALLBACK_TEXT]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in list(value.items()):
            name = key if isinstance(key, str) else _safe_str(key)
            if name not in out:
                out[name] = _jsonable(item, default, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item, default, depth + 1) for item in list(value)]
    try:
        converted = default(value) if default is not None else _safe_str(value)
    except Exception:
        converted = _safe_str(value)
    if type(converted) is type(value):  # the default gave up: no endless recursion
        return _safe_str(value)[:_MAX_FALLBACK_TEXT]
    return _jsonable(converted, default, depth + 1)


def _labels(value: Any) -> dict[str, Any]:
    """``labels`` as the ECS logging spec wants them: one flat level, keys without dots or special
    characters (replaced by ``_``); nested mappings are flattened with ``_``."""
    out: dict[str, Any] = {}

    def add(prefix: str, item: Any, depth: int) -> None:
        if isinstance(item, Mapping) and depth < 8:
            for key, sub in list(item.items()):
                name = _LABEL_KEY_RE.sub("_", _safe_str(key)) or "_"
                add(f"{prefix}_{name}" if prefix else name, sub, depth + 1)
        else:
            out.setdefault(prefix or "value", item)

    add("", value if isinstance(value, Mapping) else {"value": value}, 0)
    return out


def _stack_text(value: Any) -> str:
    if isinstance(value, list | tuple) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    return _safe_str(value)


def _flatten_into(out: dict[str, Any], prefix: str, value: Any, depth: int = 0) -> None:
    """``{"a": {"b": 1}}`` under ``prefix`` -> ``out["prefix.a.b"] = 1``; an empty object is kept."""
    if isinstance(value, dict) and value and depth < 8:
        for key, item in value.items():
            _flatten_into(out, f"{prefix}.{key}", item, depth + 1)
    else:
        out.setdefault(prefix, value)


def spec_shape(doc: dict[str, Any]) -> dict[str, Any]:
    """Our nested document in the shape of the ECS logging spec's examples (``spec_strict``).

    The first keys are ``@timestamp``, ``log.level``, ``message`` (if any) and ``ecs.version``, in
    that order, as the spec requires; ``log.level`` and ``ecs.version`` are dotted top-level keys
    (its SHOULD); ``service.*``, ``event.*``, ``trace.*``, ``transaction.*`` and ``span.*`` are dotted
    as in its examples; ``log`` (logger, origin), ``process``, ``error``, ``labels``, ``tags`` and
    everything else stay objects, as in its examples. A pure function of the document.
    """
    out: dict[str, Any] = {}
    if "@timestamp" in doc:
        out["@timestamp"] = doc["@timestamp"]
    rest = {"log": _dot_out(doc, "log", "level", out)}
    if "message" in doc:
        out["message"] = doc["message"]
    rest["ecs"] = _dot_out(doc, "ecs", "version", out)
    for key, value in doc.items():
        if key in out:
            continue
        if key in rest:
            value = rest[key]
        if isinstance(value, dict) and not value and key in rest:
            continue
        if key in _STRICT_DOTTED_ROOTS and isinstance(value, dict) and value:
            _flatten_into(out, key, value)
        else:
            out.setdefault(key, value)
    return out


def _dot_out(doc: dict[str, Any], root: str, key: str, out: dict[str, Any]) -> Any:
    """Write ``doc[root][key]`` to ``out`` as the dotted key ``root.key``; return the rest of
    ``doc[root]`` (``doc[root]`` itself when it holds no ``key``)."""
    obj = doc.get(root)
    if not isinstance(obj, dict) or key not in obj:
        return obj
    out[f"{root}.{key}"] = obj[key]
    return {k: v for k, v in obj.items() if k != key}


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict without overwriting fields the formatter already wrote.
    Empty path segments (``a..b``, ``.x``) are skipped: Elasticsearch refuses empty field names."""
    *parents, leaf = [part for part in dotted.split(".") if part] or ["_"]
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


def _last_resort_line(spec_strict: bool) -> str:
    """The line for a record nothing else could write: still the spec's required fields."""
    try:
        now = time.time()
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    except Exception:
        timestamp = "1970-01-01T00:00:00.000Z"
    if spec_strict:
        head = f'{{"@timestamp":"{timestamp}","log.level":"error","message":"<unformattable record>"'
        return f'{head},"ecs.version":"{ECS_VERSION}","tags":["{FORMAT_ERROR_TAG}"]}}'
    head = f'{{"@timestamp":"{timestamp}","log":{{"level":"error"}},"message":"<unformattable record>"'
    return f'{head},"tags":["{FORMAT_ERROR_TAG}"],"ecs":{{"version":"{ECS_VERSION}"}}}}'


def _drop_none(origin: dict[str, Any]) -> None:
    """``log.origin`` without the null values of a hand-made record (the spec types them)."""
    file = origin["file"]
    if file.get("name") is None:
        del file["name"]
    if origin.get("function") is None:
        del origin["function"]


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

    ``spec_strict`` follows the ECS logging spec's SHOULDs (see :func:`spec_shape`): then
    ``dataset`` defaults to ``service_name`` and ``include_origin`` to false. In the default mode
    they default to ``celery.worker`` and true.
    """

    def __init__(
        self,
        *args: Any,
        service_name: str = "celery",
        dataset: str | None = None,
        hostname: str | None = None,
        include_task_args: bool = False,
        include_origin: bool | None = None,
        static_fields: Mapping[str, Any] | None = None,
        spec_strict: bool = False,
        **kwargs: Any,
    ) -> None:
        for option, why in _REFUSED_OPTIONS.items():
            if kwargs.get(option):
                raise ValueError(f"EcsJsonFormatter does not support {option}: {why}")
        super().__init__(*args, **kwargs)
        self._not_extra = _NOT_EXTRA | frozenset(self.reserved_attrs)
        self.spec_strict = spec_strict
        self.service_name = service_name
        self.dataset = dataset or (service_name if spec_strict else DEFAULT_DATASET)
        self.hostname = hostname or socket.gethostname()
        self.include_task_args = include_task_args
        self.include_origin = (not spec_strict) if include_origin is None else include_origin
        self.extra_static = dict(static_fields or {})
        self._ts_second = -1
        self._ts_prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line per record, always (see the module docstring)."""
        try:
            return super().format(record)
        except Exception as exc:  # a failing msg % args, a broken exc_info, a hostile object
            return self._unformattable(record, exc)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """python-json-logger's hook between ``add_fields`` and encoding: the spec's shape if asked."""
        return spec_shape(log_data) if self.spec_strict else log_data

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Encode with orjson; fall back to a sanitising stdlib encoder for what orjson refuses.

        orjson rejects lone surrogates (text decoded with ``surrogateescape``), integers beyond 64
        bits, non-string keys (with the option on, it would write duplicate keys) and nesting
        beyond 254; a ``json_default`` may raise. Those rare records are made encodable by
        :func:`_jsonable` and written by ``json.dumps`` (surrogates escaped, never a bare NaN).
        """
        try:
            return orjson.dumps(log_data, default=self.json_default).decode()
        except Exception:
            return json.dumps(
                _jsonable(log_data, self.json_default),
                ensure_ascii=True,
                separators=(",", ":"),
                allow_nan=False,
            )

    def _unformattable(self, record: logging.LogRecord, exc: BaseException) -> str:
        """A minimal document for a record that could not be formatted, tagged and explained."""
        try:
            try:
                timestamp = self._timestamp(float(record.created), float(record.msecs))
            except Exception:
                timestamp = self._timestamp(time.time(), 0.0)
            message = _safe_str(getattr(record, "msg", ""))
            args = getattr(record, "args", None)
            if args:
                message = f"{message} (args: {_safe_str(args)[:_MAX_FALLBACK_TEXT]})"
            level = _safe_str(getattr(record, "levelname", "ERROR"))
            doc = {
                "@timestamp": timestamp,
                "log": {"level": _LEVELS.get(level) or level.lower(), "logger": _safe_str(record.name)},
                "message": message,
                "tags": [FORMAT_ERROR_TAG],
                "event": {
                    "dataset": self.dataset,
                    "reason": f"record not formattable: {type(exc).__name__}: {_safe_str(exc)}"[:1000],
                },
                "host": {"hostname": self.hostname},
                "service": {"name": self.service_name},
                "ecs": {"version": ECS_VERSION},
            }
            if self.spec_strict:
                doc = spec_shape(doc)
            return json.dumps(_jsonable(doc, None), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        except Exception:
            return _last_resort_line(self.spec_strict)

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
            log["origin"] = origin = {
                "file": {"name": record.filename, "line": record.lineno},
                "function": record.funcName,
            }
            if record.funcName is None or record.filename is None:  # a LogRecord built by hand
                _drop_none(origin)
        log_data["@timestamp"] = self._timestamp(record.created, record.msecs)
        log_data["log"] = log
        log_data["message"] = record.message
        if "message" in message_dict:  # logger.info({"message": ...}): the dict's message is the message
            log_data["message"] = _safe_str(message_dict.pop("message"))
        log_data["process"] = process = {
            "pid": record.process,
            "name": record.processName,
            "thread": {"name": record.threadName},
        }
        if record.threadName is None:  # logging.logThreads = False: absent, not null
            del process["thread"]
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

        extras = attrs.keys() - self._not_extra
        apm_labels = None
        if "elasticapm_trace_id" in extras:  # the agent sets all of _APM_ATTRS together
            for attr, field in _APM_ATTRS.items():
                if attr in extras:
                    extras.discard(attr)
                    value = attrs[attr]
                    if field == "labels":
                        apm_labels = value  # merged last: the record's own labels win
                    elif field is not None and value is not None:
                        _put(log_data, field, value)
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
            module = _safe_str(getattr(exc_type, "__module__", None))
            qualname = _safe_str(getattr(exc_type, "__qualname__", None) or exc_type)
            log_data["error"] = {
                "type": f"{module}.{qualname}" if module != "builtins" else qualname,
                "message": _safe_str(exc),  # an exception whose __str__ raises keeps its record
                "stack_trace": _stack_text(stack_trace) if stack_trace is not None else None,
            }
        elif stack_trace:
            log_data["error"] = {"stack_trace": _stack_text(stack_trace)}
        stack_info = message_dict.pop("stack_info", None)
        if stack_info:
            _put(log_data, "log.origin.stack_trace", _stack_text(stack_info))

        for key, value in self.extra_static.items():
            _put(log_data, key, value)
        for key, value in message_dict.items():
            _put(log_data, _safe_str(key), value)
        for key in extras:
            if isinstance(key, str):
                if not key.startswith("_"):
                    _put(log_data, key, attrs[key])
            else:  # extra={1: ...} puts a non-string attribute name on the record
                _put(log_data, _safe_str(key), attrs[key])
        for key, value in self.defaults.items():
            _put(log_data, _safe_str(key), value)
        error = log_data.get("error")
        if (
            isinstance(error, dict)
            and "stack_trace" in error
            and not isinstance(error["stack_trace"], str | None)
        ):
            log_data["error"] = {
                **error,
                "stack_trace": _stack_text(error["stack_trace"]),
            }  # not the caller's
        if apm_labels and isinstance(apm_labels, Mapping):
            own = log_data.get("labels")
            log_data["labels"] = {**apm_labels, **own} if isinstance(own, Mapping) else own or apm_labels
        if "labels" in log_data:
            log_data["labels"] = _labels(log_data["labels"])
