"""The configurator in a REAL Celery worker (prefork, 2 children) on the REAL RabbitMQ."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.docs import get
from tests.support.worker import celery_worker

pytestmark = pytest.mark.slow


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    docs = []
    for number, line in enumerate(path.read_bytes().split(b"\n")[:-1], 1):
        try:
            docs.append(json.loads(line))
        except ValueError as exc:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"{path}:{number} is not one JSON object: {line[:200]!r}") from exc
    return docs


@pytest.fixture(scope="module")
def worker_run(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("worker")
    env = {"KOMBU_LOG_CONNECTION": "1", "SHIPPER_TEST_KOMBU_LEVEL": "DEBUG"}
    with celery_worker(tmp, broker_url, extra_env=env) as worker:
        os.environ["SHIPPER_TEST_QUEUE"] = worker.queue
        from tests import celery_app

        celery_app.app.conf.task_default_queue = worker.queue
        celery_app.app.conf.broker_url = broker_url
        ok = celery_app.add.apply_async((2, 3), queue=worker.queue)
        failed = celery_app.fail.apply_async(("on purpose",), queue=worker.queue)
        retried = celery_app.retry_once.apply_async(queue=worker.queue)
        kombu = celery_app.kombu_publish.apply_async(queue=worker.queue)
        assert ok.get(timeout=60) == 5
        with pytest.raises(celery_app.Boom):
            failed.get(timeout=60)
        assert retried.get(timeout=60) == "ok after retry"
        assert kombu.get(timeout=60) == "published"
    return {
        "docs": read_json_lines(worker.logfile),
        "ids": {"ok": ok.id, "failed": failed.id, "retried": retried.id, "kombu": kombu.id},
        "nodename": worker.nodename,
        "stderr": worker.stderr.read_text(),
    }


REQUIRED = (
    "@timestamp",
    "log.level",
    "log.logger",
    "message",
    "process.pid",
    "process.name",
    "host.hostname",
    "service.name",
    "event.dataset",
)


def test_every_line_is_ecs_json(worker_run: dict[str, Any]) -> None:
    docs = worker_run["docs"]
    assert len(docs) > 10
    for doc in docs:
        for field in REQUIRED:
            assert get(doc, field) is not None, (field, doc)
        assert doc["@timestamp"].endswith("Z") and len(doc["@timestamp"]) == 24
        assert get(doc, "service.name") == "shipper-tests"
        assert get(doc, "event.dataset") == "celery.worker"
    # Celery installed none of its own text handlers: nothing went to the worker's stdout/stderr
    # except what bypasses logging.
    assert "[INFO/MainProcess]" not in worker_run["stderr"]


def by_task(docs: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    return [d for d in docs if get(d, "celery.task.id") == task_id]


def test_successful_task_records(worker_run: dict[str, Any]) -> None:
    docs = by_task(worker_run["docs"], worker_run["ids"]["ok"])
    states = [get(d, "celery.task.state") for d in docs]
    assert "received" in states and "succeeded" in states
    received = next(d for d in docs if get(d, "celery.task.state") == "received")
    assert get(received, "process.name") == "MainProcess"
    assert get(received, "celery.task.name") == "tests.add"
    # args/kwargs may hold personal data: not emitted by default.
    assert get(received, "celery.task.args") is None and get(received, "celery.task.kwargs") is None
    succeeded = next(d for d in docs if get(d, "celery.task.state") == "succeeded")
    assert get(succeeded, "celery.task.runtime") > 0
    assert get(succeeded, "event.duration") == int(get(succeeded, "celery.task.runtime") * 1e9)
    assert get(succeeded, "process.name").startswith("ForkPoolWorker-")
    # The app's own loggers inside the task carry the task context too.
    app_doc = next(d for d in docs if get(d, "log.logger") == "tests.app")
    assert app_doc["message"] == 'app logger inside a task: "quoted"\nsecond line'
    assert get(app_doc, "celery.task.name") == "tests.add"
    assert get(app_doc, "celery.task.retries") == 0
    assert get(app_doc, "celery.worker.hostname").startswith(worker_run["nodename"].split("@")[0])
    task_logger_doc = next(d for d in docs if d["message"] == "adding 2 and 3")
    assert get(task_logger_doc, "log.logger") == "tests.celery_app"


def test_failed_task_has_structured_error(worker_run: dict[str, Any]) -> None:
    docs = by_task(worker_run["docs"], worker_run["ids"]["failed"])
    failed = [d for d in docs if get(d, "celery.task.state") == "failed"]
    assert len(failed) == 1
    doc = failed[0]
    assert get(doc, "log.level") == "error"
    assert get(doc, "error.type") == "tests.celery_app.Boom"
    assert get(doc, "error.message") == "on purpose"
    assert "Traceback (most recent call last)" in get(doc, "error.stack_trace")
    assert "raise Boom(reason)" in get(doc, "error.stack_trace")
    warning = next(d for d in docs if d["message"] == "about to fail")
    assert get(warning, "log.level") == "warning"


def test_retried_task_counts_retries(worker_run: dict[str, Any]) -> None:
    docs = by_task(worker_run["docs"], worker_run["ids"]["retried"])
    retry = [d for d in docs if get(d, "celery.task.state") == "retry"]
    assert len(retry) == 1
    assert "first attempt fails" in get(retry[0], "celery.task.exception")
    attempts = {
        d["message"]: get(d, "celery.task.retries") for d in docs if d["message"].startswith("attempt")
    }
    assert attempts == {"attempt 0": 0, "attempt 1": 1}
    assert any(get(d, "celery.task.state") == "succeeded" for d in docs)


def test_kombu_records_inside_a_task_carry_the_task(worker_run: dict[str, Any]) -> None:
    docs = by_task(worker_run["docs"], worker_run["ids"]["kombu"])
    kombu_docs = [d for d in docs if get(d, "log.logger").startswith("kombu")]
    # One record we log on kombu's logger, and kombu's own connection tracing (KOMBU_LOG_CONNECTION).
    assert any(d["message"] == "kombu logging from inside a task" for d in kombu_docs)
    assert any(
        "establish connection" in d["message"].lower() or "connection" in d["message"].lower()
        for d in kombu_docs
        if d["message"] != "kombu logging from inside a task"
    ), kombu_docs


def test_per_child_logfiles_with_percent_I(tmp_path: Path, broker_url: str) -> None:
    """``--logfile=w%I.log``: every pool child sets logging up again; each record lands once, in
    the file of the process that logged it."""
    with celery_worker(tmp_path, broker_url, logfile="w%I.log") as worker:
        from tests import celery_app

        results = [celery_app.add.apply_async((i, i), queue=worker.queue) for i in range(6)]
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(6)]
    files = sorted(p.name for p in tmp_path.glob("w*.log"))
    assert files == ["w-1.log", "w-2.log", "w.log"]
    main_docs = read_json_lines(tmp_path / "w.log")
    assert {get(d, "process.name") for d in main_docs} == {"MainProcess"}
    child_docs = [d for name in ("w-1.log", "w-2.log") for d in read_json_lines(tmp_path / name)]
    ids = {r.id for r in results}
    succeeded = [get(d, "celery.task.id") for d in child_docs if get(d, "celery.task.state") == "succeeded"]
    assert sorted(succeeded) == sorted(ids)  # each exactly once: no duplicated handlers
    for name in ("w-1.log", "w-2.log"):
        names = {get(d, "process.name") for d in read_json_lines(tmp_path / name)}
        assert len(names) == 1 and names.pop().startswith("ForkPoolWorker-")
