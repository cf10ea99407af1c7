"""Direct tests of the formatter, filter, handler and installer (no worker)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.logconfig import (
    CeleryContextFilter,
    EcsJsonFormatter,
    JsonLinesFileHandler,
    dict_config,
    install_json_logging,
)


def make_record(
    msg: str = "hello", args: Any = None, level: int = logging.INFO, **extra: Any
) -> logging.LogRecord:
    rec = logging.LogRecord("app.module", level, "/src/app/module.py", 10, msg, args, None, func="work")
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def fmt(record: logging.LogRecord, **kw: Any) -> dict[str, Any]:
    line = EcsJsonFormatter(service_name="svc", hostname="h1", **kw).format(record)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


def test_ecs_fields() -> None:
    rec = make_record("x=%s", ("1",))
    rec.created = 1_764_000_000.123456
    rec.msecs = 123.456
    doc = fmt(rec)
    assert doc["@timestamp"] == "2025-11-24T16:00:00.123Z"
    assert doc["log"]["level"] == "info"
    assert doc["log"]["logger"] == "app.module"
    assert doc["log"]["origin"] == {"file": {"name": "module.py", "line": 10}, "function": "work"}
    assert doc["message"] == "x=1"
    assert doc["process"]["pid"] == os.getpid()
    assert doc["host"] == {"hostname": "h1"}
    assert doc["service"] == {"name": "svc"}
    assert doc["event"] == {"dataset": "celery.worker"}
    assert "celery" not in doc and "error" not in doc


@given(st.text())
def test_any_message_stays_one_json_line(message: str) -> None:
    doc = fmt(make_record(message))
    assert doc["message"] == message


def test_newline_and_quote_stay_one_line() -> None:
    doc = fmt(make_record('a "quoted"\nsecond\r\nthird \\ \t'))
    assert doc["message"] == 'a "quoted"\nsecond\r\nthird \\ \t'


def test_exception_fields() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        rec = make_record("failed", level=logging.ERROR)
        rec.exc_info = sys.exc_info()
    doc = fmt(rec)
    assert doc["error"]["type"] == "KeyError"
    assert doc["error"]["message"] == "'missing'"
    assert doc["error"]["stack_trace"].startswith("Traceback (most recent call last)")
    assert doc["log"]["level"] == "error"


def test_context_attrs_become_celery_fields_and_asyncio_taskname_is_ignored() -> None:
    rec = make_record(
        celery_task_id="abc",
        celery_task_name="tasks.add",
        celery_task_retries=2,
        celery_worker_hostname="celery@w1",
        taskName="Task-1",
    )
    doc = fmt(rec)
    assert doc["celery"] == {
        "task": {"id": "abc", "name": "tasks.add", "retries": 2},
        "worker": {"hostname": "celery@w1"},
    }
    assert "taskName" not in doc


def test_celery_data_extra_maps_to_state_and_drops_args() -> None:
    from celery.app.trace import LOG_SUCCESS

    data = {
        "id": "t1",
        "name": "tasks.add",
        "return_value": "3",
        "runtime": 0.25,
        "args": "(1, 2)",
        "kwargs": "{'email': 'x@example.com'}",
    }
    doc = fmt(make_record(LOG_SUCCESS, data, data=data))
    assert doc["celery"]["task"] == {"id": "t1", "name": "tasks.add", "state": "succeeded", "runtime": 0.25}
    assert doc["event"]["duration"] == 250_000_000
    assert "data" not in doc
    assert "x@example.com" not in json.dumps(doc)
    doc = fmt(make_record(LOG_SUCCESS, data, data=data), include_task_args=True)
    assert doc["celery"]["task"]["kwargs"] == "{'email': 'x@example.com'}"


def test_unrelated_data_extra_is_kept_as_an_extra() -> None:
    doc = fmt(make_record("user message", data={"order": 7}))
    assert doc["data"] == {"order": 7}


def test_extras_nest_and_never_overwrite_ecs_fields() -> None:
    doc = fmt(make_record("m", **{"http.status": 200, "log": "clobber?", "user_id": 5}))
    assert doc["http"] == {"status": 200}
    assert doc["user_id"] == 5
    assert doc["log"]["level"] == "info"


def test_dict_message_and_unserialisable_values() -> None:
    rec = make_record("ignored")
    rec.msg = {"event": "custom", "obj": object(), "big": 2**80}  # type: ignore[assignment]
    doc = fmt(rec)
    assert doc["big"] == 2**80
    assert doc["obj"].startswith("<object object")


def test_invalid_surrogates_do_not_lose_the_record() -> None:
    doc = fmt(make_record("bad \udcff byte"))
    assert doc["message"] == "bad \udcff byte"


def test_filter_outside_a_task_only_adds_worker_hostname() -> None:
    rec = make_record()
    assert CeleryContextFilter("celery@w1").filter(rec)
    assert rec.celery_worker_hostname == "celery@w1"  # type: ignore[attr-defined]
    assert not hasattr(rec, "celery_task_id")


def test_filter_inside_a_task_reads_the_request() -> None:
    from celery import Celery

    app = Celery("unit", set_as_current=False)
    seen: dict[str, Any] = {}

    @app.task(name="unit.probe", bind=True)
    def probe(self: Any) -> None:
        rec = make_record()
        CeleryContextFilter().filter(rec)
        seen.update(rec.__dict__)

    probe.apply(task_id="tid-1", retries=3)
    assert seen["celery_task_id"] == "tid-1"
    assert seen["celery_task_name"] == "unit.probe"
    assert seen["celery_task_retries"] == 3


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in before:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_install_is_idempotent(clean_root: logging.Logger, tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    before = len(clean_root.handlers)
    install_json_logging(logfile=str(log), level="INFO")
    install_json_logging(logfile=str(log), level="INFO")
    assert len(clean_root.handlers) == before + 1
    logging.getLogger("x").info("once")
    lines = log.read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["once"]


def test_kombu_level(clean_root: logging.Logger) -> None:
    install_json_logging(stream=io.StringIO(), kombu_level="DEBUG")
    assert logging.getLogger("kombu").level == logging.DEBUG
    assert logging.getLogger("amqp").level == logging.DEBUG


def test_watched_file_handler_follows_rename_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    handler = JsonLinesFileHandler(str(path))
    handler.setFormatter(EcsJsonFormatter())
    logger = logging.getLogger("rotation-test")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("before")
        path.rename(tmp_path / "app.log.1")  # what logrotate's `create` mode does
        logger.info("after")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [json.loads(x)["message"] for x in (tmp_path / "app.log.1").read_text().splitlines()] == ["before"]
    assert [json.loads(x)["message"] for x in path.read_text().splitlines()] == ["after"]


def test_big_records_are_written_whole_by_concurrent_processes(tmp_path: Path) -> None:
    """Several forked writers, records far bigger than a stdio buffer: every line stays intact."""
    path = tmp_path / "shared.log"
    pids = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:  # child
            try:
                handler = JsonLinesFileHandler(str(path))
                handler.setFormatter(EcsJsonFormatter())
                lg = logging.getLogger(f"writer{n}")
                lg.propagate = False
                lg.addHandler(handler)
                for i in range(50):
                    lg.warning("%d-%d %s", n, i, "x" * 100_000)
                handler.close()
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    lines = path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 200
    assert {json.loads(line)["message"].split(" ")[0] for line in lines} == {
        f"{n}-{i}" for n in range(4) for i in range(50)
    }


def test_dict_config_for_non_celery_services(tmp_path: Path, clean_root: logging.Logger) -> None:
    path = tmp_path / "web.log"
    logging.config.dictConfig(dict_config("web", filename=str(path), kombu_level="WARNING"))
    logging.getLogger("web.views").info("request done", extra={"http.status": 200})
    doc = json.loads(path.read_text().splitlines()[-1])
    assert doc["service"]["name"] == "web"
    assert doc["http"]["status"] == 200
    assert logging.getLogger("kombu").level == logging.WARNING
