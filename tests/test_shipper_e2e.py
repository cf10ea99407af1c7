"""End to end with the REAL shipper process and a REAL Elasticsearch-compatible server (noida-db,
or ES_URL): files -> searchable documents, exactly once, through restarts and injected faults."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.components import free_port
from tests.support.es import all_docs, es_client
from tests.support.faultproxy import FaultProxy
from tests.support.shipper_proc import ShipperProcess, expected_ids, write_config

SAMPLES = Path(__file__).parent / "samples"
pytestmark = pytest.mark.slow

INPUTS = """\
  - id: celery
    paths: ["{logs}/worker*.log"]
    parser: celery
    multiline_timeout: 0.2
  - id: rabbitmq
    paths: ["{logs}/rabbit@*.log"]
    parser: rabbitmq
    multiline_timeout: 0.2
  - id: app
    paths: ["{logs}/app*.json"]
    parser: celery_json
"""


def wait_until(pred: Callable[[], bool], timeout: float, what: str, tail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{tail()}"
        time.sleep(0.2)


def namespace_docs(es_url: str, namespace: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return all_docs(es_url, f"logs-*-{namespace}*")


BAD_JSON = (
    b'{"@timestamp": "2026-11-24T10:00:00.000Z", "message": "pid is not a number", '
    b'"process": {"pid": "abc"}}\n'
)


def prepare_logs(tmp: Path) -> tuple[Path, dict[str, bytes], str]:
    logs = tmp / "logs"
    logs.mkdir()
    shutil.copy(SAMPLES / "celery-5.7-text.log", logs / "worker.log")
    shutil.copy(SAMPLES / "rabbitmq-3.10-text.log", logs / "rabbit@vm.log")
    shutil.copy(SAMPLES / "celery-5.7-json.log", logs / "app.json")
    with open(logs / "app.json", "ab") as f:
        f.write(BAD_JSON)
    expected = {
        **expected_ids(logs / "worker.log", "celery"),
        **expected_ids(logs / "rabbit@vm.log", "rabbitmq"),
        **expected_ids(logs / "app.json", "celery_json"),
    }
    bad_id = next(k for k, v in expected.items() if v == BAD_JSON.rstrip(b"\n"))
    return logs, expected, bad_id


def read_dead_letters(data_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    path = data_dir / "dead-letter.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_files_to_searchable_documents_exactly_once(tmp_path: Path, es_url: str) -> None:
    logs, expected, bad_id = prepare_logs(tmp_path)
    cfg = write_config(tmp_path, es_url, INPUTS.format(logs=logs))
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        wanted = set(expected) - {bad_id}
        wait_until(
            lambda: set(namespace_docs(es_url, cfg.namespace)) == wanted, 60, "all documents", shipper.tail
        )
        wait_until(lambda: len(read_dead_letters(cfg.data_dir)) == 1, 30, "the dead letter", shipper.tail)
        assert shipper.stop() == 0, shipper.tail()
    finally:
        shipper.ensure_dead()
    docs = namespace_docs(es_url, cfg.namespace)
    assert set(docs) == set(expected) - {bad_id}
    (dead,) = read_dead_letters(cfg.data_dir)
    assert dead["_id"] == bad_id and dead["status"] == 400
    assert dead["document"]["message"] == "pid is not a number"
    assert "process.pid" in json.dumps(dead["error"]) or "pid" in json.dumps(dead["error"])
    assert stat.S_IMODE(os.stat(cfg.data_dir / "dead-letter.ndjson").st_mode) == 0o600
    # Searchable with the fields the saved searches use.
    client = es_client(es_url)
    failed = client.search(
        index=f"logs-celery.worker-{cfg.namespace}*",
        query={"query_string": {"query": "celery.task.state:failed"}},
    )
    assert failed["hits"]["total"]["value"] == 3  # two in the text sample, one in the configurator's JSON
    auth = client.search(
        index=f"logs-rabbitmq.log-{cfg.namespace}*", query={"term": {"tags": "authentication_failure"}}
    )
    assert auth["hits"]["total"]["value"] == 1
    # The shipper's own accounting adds up: read = indexed + dead-lettered (+ 0 duplicates, 0 in flight).
    stopped = next(
        json.loads(line)
        for line in shipper.log.read_text().splitlines()
        if '"message":"shipper stopped"' in line
    )
    assert (
        stopped["sink"]["indexed"] + stopped["sink"]["dead_lettered"]
        == stopped["tailer"]["records"]
        == len(expected)
    )


def test_restart_appends_without_duplicates(tmp_path: Path, es_url: str) -> None:
    logs, expected, bad_id = prepare_logs(tmp_path)
    cfg = write_config(tmp_path, es_url, INPUTS.format(logs=logs))
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        wanted = set(expected) - {bad_id}
        wait_until(
            lambda: set(namespace_docs(es_url, cfg.namespace)) == wanted, 60, "first run", shipper.tail
        )
        assert shipper.stop() == 0
        with open(logs / "worker.log", "ab") as f:
            f.write(b"[2026-11-24 21:00:00,000: INFO/MainProcess] after the restart\n")
        more = expected_ids(logs / "worker.log", "celery")
        shipper.start()
        shipper.wait_started()
        wanted |= set(more)
        wait_until(
            lambda: set(namespace_docs(es_url, cfg.namespace)) == wanted, 60, "second run", shipper.tail
        )
        assert shipper.stop() == 0
    finally:
        shipper.ensure_dead()
    assert set(namespace_docs(es_url, cfg.namespace)) == wanted
    assert len(read_dead_letters(cfg.data_dir)) == 1  # not dead-lettered twice


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
def test_faults_429_503_resets_outage_and_kill_9(tmp_path: Path, es_url: str, workers: int) -> None:
    """Items refused with 429 (twice each), whole requests 503, connections reset mid-request, the
    server unreachable for a while, and a kill -9: the index ends with exactly the expected set."""
    logs, expected, bad_id = prepare_logs(tmp_path)
    proxy = FaultProxy(es_url, free_port())
    proxy.reject_items = lambda doc_id: int(doc_id.rsplit("-", 1)[1], 16) % 3 == 0
    proxy.reject_times = 2
    proxy.fail_requests = 3
    proxy.reset_requests = 2
    # Extra lines written while faults are active, so some are read during the outage.
    cfg = write_config(tmp_path, proxy.url, INPUTS.format(logs=logs), workers=workers)
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        time.sleep(1.5)
        proxy.down()
        with open(logs / "worker.log", "ab") as f:
            for i in range(200):
                f.write(
                    f"[2026-11-24 21:00:00,{i % 1000:03d}: INFO/MainProcess] during the outage {i}\n".encode()
                )
        time.sleep(2)
        shipper.kill()  # while the server is unreachable: nothing acknowledged may be lost
        proxy.up()
        shipper.start()
        shipper.wait_started()
        expected.update(expected_ids(logs / "worker.log", "celery"))
        wanted = set(expected) - {bad_id}
        wait_until(
            lambda: set(namespace_docs(es_url, cfg.namespace)) == wanted, 90, "all documents", shipper.tail
        )
        wait_until(lambda: len(read_dead_letters(cfg.data_dir)) >= 1, 30, "the dead letter", shipper.tail)
        assert shipper.stop() == 0, shipper.tail()
    finally:
        shipper.ensure_dead()
        proxy.down()
    docs = namespace_docs(es_url, cfg.namespace)
    assert set(docs) == wanted
    # Each document carries the content of its own record: nothing shifted or mixed up.
    for doc_id, doc in docs.items():
        assert doc["log"]["offset"] == int(doc_id.rsplit("-", 1)[1], 16)
    assert {d["_id"] for d in read_dead_letters(cfg.data_dir)} == {bad_id}
    assert proxy.rejected and max(proxy.rejected.values()) == 2
    assert proxy.fail_requests == 0 and proxy.reset_requests == 0
