"""Issue 17: the configurator's formatter against the ECS logging spec (elastic/ecs-logging,
``spec/spec.json`` and ``spec/README.md``, commit eabe529).

Every MUST is checked on every line of both modes, for ordinary and hostile records: one JSON object
per line; ``@timestamp``, ``log.level`` and ``ecs.version`` present; ``@timestamp`` first, then
``log.level``, then ``message``; the types spec.json gives; ``labels`` keys without ``.``, ``*`` or
``\\``. ``spec_strict=True`` must reproduce the spec's example lines field by field; the default mode
must stay byte for byte what it was.
"""

from __future__ import annotations

import io
import logging
import logging.config
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shipper.logconfig import EcsJsonFormatter, JsonLoggingOptions, dict_config
from shipper.logconfig import formatter as formatter_module
from shipper.logconfig.setup import build_handlers
from shipper.parse.base import ParseContext, TimeConverter
from shipper.parse.json_lines import parse as parse_json_line
from tests.support.docs import strict_loads as strict_json

# spec.json: required fields, and the type of every field it lists.
REQUIRED = ("@timestamp", "log.level", "ecs.version")
TYPES: dict[str, type | tuple[type, ...]] = {
    "@timestamp": str,
    "log.level": str,
    "message": str,
    "ecs.version": str,
    "labels": dict,
    "trace.id": str,
    "transaction.id": str,
    "service.name": str,
    "service.node.name": str,
    "service.version": str,
    "service.environment": str,
    "event.dataset": str,
    "process.thread.name": str,
    "log.logger": str,
    "log.origin.file.line": int,
    "log.origin.file.name": str,
    "log.origin.function": str,
    "error.type": str,
    "error.message": str,
    "error.stack_trace": str,
}
LABEL_KEY_FORBIDDEN = (".", "*", "\\")
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MODES = {"default": {}, "spec_strict": {"spec_strict": True}}


def strict_loads(line: str) -> dict[str, Any]:
    """JSON with no NaN/Infinity and no duplicate keys; the line must be one object."""
    doc = strict_json(line)
    assert isinstance(doc, dict)
    return doc


def leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every field in line order, whether written nested or dotted;
    ``labels`` is one field (an object), as in the spec."""
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name != "labels":
            yield from leaves(value, f"{name}.")
        else:
            yield name, value


def check_spec_musts(line: str, created: float | None = None) -> dict[str, Any]:
    """Assert every MUST of the spec on one formatted line; return its fields by dotted name."""
    assert "\n" not in line and line.startswith("{")
    doc = strict_loads(line)
    ordered = list(leaves(doc))
    names = [name for name, _ in ordered]
    fields = dict(ordered)
    assert len(fields) == len(ordered), f"a field written twice (dotted and nested?): {names}"
    for name in REQUIRED:
        assert name in fields, f"{name} missing from {line}"
    # Order: @timestamp, log.level, message (if present); other keys are unordered.
    assert names[0] == "@timestamp" and names[1] == "log.level", names
    if "message" in fields:
        before_message = names[: names.index("message")]
        # Nested ``log`` makes log.logger/log.origin come with log.level (README: deviations);
        # nothing outside ``log`` may come before the message.
        assert all(n == "@timestamp" or n.startswith("log.") for n in before_message), names
    for name, kind in TYPES.items():
        if name in fields:
            assert isinstance(fields[name], kind) and not isinstance(fields[name], bool), (name, line)
    assert TIMESTAMP_RE.fullmatch(fields["@timestamp"]), fields["@timestamp"]
    if created is not None:
        import datetime as dt

        utc = dt.datetime.fromtimestamp(created, dt.UTC)
        assert fields["@timestamp"] == utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    labels = doc.get("labels", {})
    assert isinstance(labels, dict)
    for key, value in labels.items():
        assert not any(ch in key for ch in LABEL_KEY_FORBIDDEN), key
        assert not isinstance(value, dict), (key, value)  # labels are one flat level
    return fields


class Boom(Exception):
    pass


def _log_everything(logger: logging.Logger) -> None:
    logger.info("plain")
    logger.warning("with %s and %r", "args", {"a": 1})
    logger.info({"message": "dict message", "key.dotted": 1})
    logger.info({"no": "message"})
    logger.info("", extra={"labels": {"a.b": 1, "c*d": "x", "e\\f": True, "g": {"h.i": 2}}})
    logger.info("hostile", extra={"log.level": "fake", "ecs": "fake", "@timestamp": "fake", "labels": "x"})
    logger.info("stack", stack_info=True)
    logger.info("celery", extra={"celery_task_id": "t-1", "celery_task_name": "tasks.add"})
    logger.info("bad %d", "not a number")  # msg % args fails: the minimal document
    try:
        raise Boom("kaput")
    except Boom:
        logger.exception("failed")
    logger.error("exc_info without exception", exc_info=(None, None, None))


@pytest.fixture
def capture() -> Iterator[Callable[..., tuple[logging.Logger, io.StringIO]]]:
    loggers: list[logging.Logger] = []

    def make(**formatter_kwargs: Any) -> tuple[logging.Logger, io.StringIO]:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(EcsJsonFormatter(service_name="svc", **formatter_kwargs))
        logger = logging.getLogger(f"ecs-spec-{len(loggers)}")
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        loggers.append(logger)
        return logger, stream

    yield make
    for logger in loggers:
        logger.handlers = []


@pytest.mark.parametrize("mode", MODES)
def test_every_line_meets_every_must(
    mode: str, capture: Callable[..., tuple[logging.Logger, io.StringIO]]
) -> None:
    logger, stream = capture(**MODES[mode])
    _log_everything(logger)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    docs = [check_spec_musts(line) for line in lines]
    assert docs[8]["tags"] == ["log_format_error"]
    assert docs[9]["error.type"].endswith("Boom") and docs[9]["error.message"] == "kaput"


@pytest.mark.parametrize("mode", MODES)
def test_timestamp_is_the_records_time_in_utc_with_milliseconds(mode: str) -> None:
    formatter = EcsJsonFormatter(**MODES[mode])
    for created in (0.0, 1463990736.789, 1463990736.0005, 1700000000.9999, 4102444800.5):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        check_spec_musts(formatter.format(record), created)


@pytest.mark.parametrize("mode", MODES)
def test_hand_made_records_write_no_nulls_for_typed_fields(mode: str) -> None:
    """A LogRecord built by hand has funcName None; logThreads=False leaves threadName None: the
    spec types those fields as strings, so they are absent, never null (the old code wrote null)."""
    formatter = EcsJsonFormatter(include_origin=True, **MODES[mode])
    record = logging.LogRecord("x", logging.INFO, None, 3, "m", None, None)  # type: ignore[arg-type]
    record.threadName = None
    fields = check_spec_musts(formatter.format(record))
    assert None not in fields.values(), fields
    assert fields["log.origin.file.line"] == 3


@pytest.mark.parametrize("mode", MODES)
def test_the_last_resort_line_still_has_the_required_fields(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When even the minimal document cannot be encoded, the line keeps @timestamp, log.level and
    ecs.version, in order (the old line had only a message and a tag)."""

    def refuse(*_: Any, **__: Any) -> str:
        raise RuntimeError("no")

    monkeypatch.setattr(formatter_module.json, "dumps", refuse)
    formatter = EcsJsonFormatter(**MODES[mode])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "bad %d", ("x",), None)
    fields = check_spec_musts(formatter.format(record))
    assert fields["tags"] == ["log_format_error"] and fields["ecs.version"] == formatter_module.ECS_VERSION


@pytest.mark.parametrize("mode", MODES)
def test_apm_trace_context_is_picked_up(mode: str) -> None:
    """spec.json: "When APM agents add this field to the context, ecs loggers should pick it up".
    Elastic's Python agent puts these attributes on every record (its log record factory)."""
    formatter = EcsJsonFormatter(**MODES[mode])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    apm = {
        "elasticapm_trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "elasticapm_transaction_id": "00f067aa0ba902b7",
        "elasticapm_span_id": None,
        "elasticapm_service_name": "other",
        "elasticapm_service_environment": "production",
        "elasticapm_labels": {"agent.label": "x", "own": "agent"},
        "labels": {"own": "record"},
    }
    record.__dict__.update(apm)
    fields = check_spec_musts(formatter.format(record))
    assert fields["trace.id"] == apm["elasticapm_trace_id"]
    assert fields["transaction.id"] == apm["elasticapm_transaction_id"]
    assert fields["service.environment"] == "production" and fields["service.name"] == "celery"
    assert fields["labels"] == {"agent_label": "x", "own": "record"}
    assert not [name for name in fields if "elasticapm" in name and not name.startswith("labels")]


# The spec's example lines (spec/README.md), as the spec writes them; its error example has trailing
# commas (not valid JSON), fixed here.
SPEC_MESSAGE_EXAMPLE = {
    "@timestamp": "2016-05-23T08:05:34.853Z",
    "log.level": "NOTICE",
    "message": "Hi, I am the spec for the ECS logging libraries.",
    "ecs.version": "1.4.0",
}
SPEC_RICH_EXAMPLE = {
    "@timestamp": "2016-05-23T08:05:36.789Z",
    "log.level": "NOTICE",
    "message": "This is an event with a more elaborate context",
    "ecs.version": "1.4.0",
    "log": {
        "logger": "MyLogger",
        "origin": {"file": {"name": "App.java", "line": 42}, "function": "methodName"},
    },
    "process": {"thread": {"name": "my-thread-name-001"}},
    "labels": {"app_version": "1.0.42", "app_region": "europe-02", "app_uptime": "2016-05-15T14:03:12.345Z"},
    "tags": ["production", "env001"],
    "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "transaction.id": "00f067aa0ba902b7",
    "service.name": "opbeans",
    "service.version": "1.2.3",
    "service.environment": "production",
    "event.dataset": "opbeans",
}
SPEC_ERROR_EXAMPLE = {
    "@timestamp": "2016-05-23T08:05:37.123Z",
    "log.level": "ERROR",
    "message": "An error happened!",
    "ecs.version": "1.4.0",
    "log": {
        "logger": "MyLogger",
        "origin": {"file": {"name": "App.java", "line": 42}, "function": "methodName"},
    },
    "process": {"thread": {"name": "my-thread-name-042"}},
    "error": {"type": "java.lang.NullPointerException", "message": "The argument cannot be null"},
    "labels": {"app_version": "1.0.42", "app_region": "europe-02", "app_uptime": "2016-05-15T14:03:12.345Z"},
    "tags": ["production", "env042"],
}

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")


class NullPointerException(Exception):
    pass


NullPointerException.__module__, NullPointerException.__qualname__ = "java.lang", "NullPointerException"


def _spec_record(example: dict[str, Any]) -> logging.LogRecord:
    level = logging.ERROR if example["log.level"] == "ERROR" else NOTICE
    log = example.get("log", {"logger": "MyLogger", "origin": {"file": {"name": "App.java", "line": 42}}})
    exc_info = None
    if "error" in example:
        try:
            raise NullPointerException(example["error"]["message"])
        except NullPointerException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
    record = logging.LogRecord(
        log["logger"],
        level,
        f"/src/{log['origin']['file']['name']}",
        log["origin"]["file"]["line"],
        example["message"],
        None,
        exc_info,  # type: ignore[arg-type]
        func=log["origin"].get("function"),
    )
    import datetime as dt

    when = dt.datetime.fromisoformat(example["@timestamp"].replace("Z", "+00:00"))
    record.created = when.timestamp()
    record.msecs = when.microsecond // 1000
    record.threadName = example.get("process", {}).get("thread", {}).get("name", "main")
    if "trace.id" in example:
        record.elasticapm_trace_id = example["trace.id"]
        record.elasticapm_transaction_id = example["transaction.id"]
    return record


def _spec_formatter(example: dict[str, Any]) -> EcsJsonFormatter:
    static: dict[str, Any] = {}
    for key in ("labels", "tags", "service.version", "service.environment"):
        if key in example:
            static[key] = example[key]
    return EcsJsonFormatter(
        spec_strict=True,
        service_name=example.get("service.name", "opbeans"),
        include_origin="log" in example,  # the spec: log.origin is opt-in
        static_fields=static,
    )


@pytest.mark.parametrize(
    "example", [SPEC_MESSAGE_EXAMPLE, SPEC_RICH_EXAMPLE, SPEC_ERROR_EXAMPLE], ids=["message", "rich", "error"]
)
def test_strict_mode_reproduces_the_specs_examples_field_by_field(example: dict[str, Any]) -> None:
    line = _spec_formatter(example).format(_spec_record(example))
    check_spec_musts(line)
    ours = strict_loads(line)
    # The same four first keys, in the spec's order and form (dotted log.level and ecs.version).
    assert list(ours)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    for key, expected in example.items():
        assert key in ours, f"{key} missing or not in the spec's form: {line}"
        got = ours[key]
        if key == "ecs.version":
            assert got == formatter_module.ECS_VERSION  # the spec's examples are ECS 1.4
        elif key == "log.level":
            assert got == expected.lower()  # lower case, as ecs-logging-python (README)
        elif key in ("log", "process", "error"):
            # Our extras in those objects (process.pid, error.stack_trace) may follow.
            assert {k: got[k] for k in expected} == expected, (key, got)
        else:
            assert got == expected, (key, got)
    # Keys the spec's example does not have are only our additions (log.logger, process.pid...).
    extra = [key for key in ours if key not in example]
    assert set(extra) <= {"log", "host", "process", "service.name", "event.dataset"}, extra


def test_strict_mode_follows_the_shoulds() -> None:
    """log.origin opt-in; event.dataset = service.name unless configured; dotted log.level and
    ecs.version; an explicit dataset and include_origin are honoured."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None, func="f")
    doc = strict_loads(EcsJsonFormatter(spec_strict=True, service_name="billing").format(record))
    assert doc["event.dataset"] == "billing" and "log" in doc and "origin" not in doc["log"]
    assert "log.level" in doc and "ecs.version" in doc and "ecs" not in doc
    doc = strict_loads(
        EcsJsonFormatter(spec_strict=True, dataset="celery.worker", include_origin=True).format(record)
    )
    assert doc["event.dataset"] == "celery.worker" and doc["log"]["origin"]["function"] == "f"


GOLDEN_DEFAULT = (
    '{"@timestamp":"2016-05-24T08:05:36.789Z","log":{"level":"warning","logger":"celery.app.trace",'
    '"origin":{"file":{"name":"tasks.py","line":42},"function":"add"}},"message":"Task tasks.add[id-1] '
    'retry: boom","process":{"pid":4242,"name":"ForkPoolWorker-1","thread":{"name":"MainThread"}},'
    '"host":{"hostname":"w1"},"service":{"name":"billing","version":"1.2.3"},"event":{"dataset":'
    '"celery.worker"},"ecs":{"version":"8.11.0"},"celery":{"task":{"id":"id-1","name":"tasks.add",'
    '"retries":2},"worker":{"hostname":"celery@w1"}},"labels":{"app_version":"1.0"}}'
)


def _golden_record() -> logging.LogRecord:
    record = logging.LogRecord(
        "celery.app.trace",
        logging.WARNING,
        "/app/tasks.py",
        42,
        "Task %s[%s] retry: %s",
        ("tasks.add", "id-1", "boom"),
        None,
        func="add",
    )
    record.created, record.msecs = 1464077136.789, 789.0
    record.process, record.processName, record.threadName = 4242, "ForkPoolWorker-1", "MainThread"
    record.__dict__.update(
        celery_task_id="id-1",
        celery_task_name="tasks.add",
        celery_task_retries=2,
        celery_worker_hostname="celery@w1",
        labels={"app.version": "1.0"},  # one extra: extras come in set order (per process)
    )
    return record


def test_default_mode_is_unchanged_byte_for_byte() -> None:
    """The line the formatter wrote before spec_strict existed (generated with that version)."""
    formatter = EcsJsonFormatter(
        service_name="billing", hostname="w1", static_fields={"service.version": "1.2.3"}
    )
    assert formatter.format(_golden_record()) == GOLDEN_DEFAULT


def test_strict_lines_ship_as_the_same_document() -> None:
    """The shipper's JSON-lines parser expands the dotted keys: a strict line becomes the document
    the default line becomes (origin and dataset set alike), except that extras which are not ECS
    fields land under ``json`` (the parser's rule for JSON that is not our default output; README)."""
    kwargs: dict[str, Any] = {
        "service_name": "billing",
        "hostname": "w1",
        "static_fields": {"service.version": "1"},
    }
    record = _golden_record()
    record.order = {"id": 7}
    default = EcsJsonFormatter(**kwargs).format(record)
    strict = EcsJsonFormatter(
        spec_strict=True, include_origin=True, dataset="celery.worker", **kwargs
    ).format(record)
    assert strict != default
    ctx = ParseContext(TimeConverter("UTC"), "2026-01-01T00:00:00.000Z")
    shipped_strict, shipped_default = parse_json_line(strict, ctx), parse_json_line(default, ctx)
    assert shipped_strict.pop("json") == {"order": shipped_default.pop("order")} == {"order": {"id": 7}}
    assert shipped_strict == shipped_default


def test_spec_strict_reaches_the_formatter_through_every_configure_call(tmp_path: Any) -> None:
    options = JsonLoggingOptions(
        spec_strict=True, service_name="web", stream=io.StringIO(), celery_context=False
    )
    (handler,) = build_handlers(options)
    assert isinstance(handler.formatter, EcsJsonFormatter) and handler.formatter.spec_strict
    assert handler.formatter.dataset == "web" and not handler.formatter.include_origin
    (handler,) = build_handlers(JsonLoggingOptions(stream=io.StringIO(), celery_context=False))
    assert isinstance(handler.formatter, EcsJsonFormatter) and not handler.formatter.spec_strict
    assert handler.formatter.dataset == "celery.worker" and handler.formatter.include_origin

    path = tmp_path / "web.log"
    config = dict_config("web", filename=str(path), spec_strict=True)
    logger = logging.getLogger("ecs-spec-dictconfig")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        logger.info("hello")
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers, root.level = saved[0], saved[1]
    fields = check_spec_musts(path.read_text().splitlines()[-1])
    assert fields["event.dataset"] == "web" and "log.level" in strict_loads(path.read_text().splitlines()[-1])
