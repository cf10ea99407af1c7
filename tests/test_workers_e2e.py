"""`shipper run` with `workers: 2`, and workers that die: kill -9 of a worker, a record that kills
its worker, kill -9 of the main process, SIGTERM while Elasticsearch is unreachable. Nothing may
hang, nothing may be lost or duplicated, and no process may outlive the main one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.components import free_port
from tests.support.es import all_docs
from tests.support.faultproxy import FaultProxy
from tests.support.shipper_proc import REPO, ShipperConfigFile, ShipperProcess, expected_ids, write_config

pytestmark = pytest.mark.slow

POISON_SITE = """
import os, signal
if os.environ.get("SHIPPER_TEST_POISON"):
    # Test-only fault injection: a record containing POISON-PILL (or any, with "all") kills the
    # process parsing it, as a crash in a C extension would. Only shipping workers parse records.
    import shipper.pipeline as _pipeline
    _real = _pipeline.build_document
    _all = os.environ["SHIPPER_TEST_POISON"] == "all"
    def _poisoned(record, *args):
        if _all or b"POISON-PILL" in record.data:
            os.kill(os.getpid(), signal.SIGKILL)
        return _real(record, *args)
    _pipeline.build_document = _poisoned
if os.environ.get("SHIPPER_TEST_BROKEN_WORKER"):
    import shipper.pipeline as _pipeline
    def _broken(*args, **kwargs):
        raise RuntimeError("injected: this worker cannot start")
    _pipeline.Shipping.__init__ = _broken
"""


def poison_env(tmp: Path, **env: str) -> dict[str, str]:
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(POISON_SITE)
    # REPO too: sitecustomize imports shipper before `-m` puts the working directory on the path.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), **env}


def wait_until(pred: Callable[[], bool], timeout: float, what: str, tail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{tail()}"
        time.sleep(0.05)


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(
        json.dumps({"@timestamp": "2026-11-24T10:00:00.000Z", "message": f"line {i}"}).encode() + b"\n"
        for i in range(start, start + n)
    )


def setup_files(tmp: Path, data: bytes) -> tuple[Path, str]:
    logs = tmp / "logs"
    logs.mkdir()
    (logs / "app.json").write_bytes(data)
    return logs, f'  - id: app\n    paths: ["{logs}/*.json"]\n    parser: celery_json\n'


def workers_of(shipper: ShipperProcess) -> list[psutil.Process]:
    assert shipper.proc is not None
    return psutil.Process(shipper.proc.pid).children(recursive=True)


def log_records(shipper: ShipperProcess) -> list[dict[str, Any]]:
    out = []
    for line in shipper.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def deaths(shipper: ShipperProcess) -> list[dict[str, Any]]:
    return [r for r in log_records(shipper) if r["message"].startswith("shipping worker died")]


def lag_zero(cfg: ShipperConfigFile) -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "shipper", "status", "-c", str(cfg.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    rows = out.stdout.splitlines()[1:]
    return bool(rows) and all(row.split()[4] == "0" for row in rows)


def gone(procs: list[psutil.Process], timeout: float) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


def test_kill_9_of_a_worker_is_noticed_and_its_batches_are_sent_again(tmp_path: Path, es_url: str) -> None:
    logs, inputs = setup_files(tmp_path, lines(3000))
    proxy = FaultProxy(es_url, free_port())
    proxy.down()  # the workers hold unacknowledged batches when one is killed
    cfg = write_config(tmp_path, proxy.url, inputs, workers=2, es_extra="index_mode: daily_index")
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        wait_until(lambda: len(workers_of(shipper)) == 2, 30, "two workers", shipper.tail)
        time.sleep(1.5)  # they have batches by now, and retry
        victim = workers_of(shipper)[0]
        victim.kill()
        killed_at = time.monotonic()
        wait_until(lambda: deaths(shipper), 5, "the death to be noticed", shipper.tail)
        noticed = time.monotonic() - killed_at
        assert noticed < 2.0, noticed
        wait_until(lambda: len(workers_of(shipper)) == 2, 30, "a replacement", shipper.tail)
        assert victim.pid not in {p.pid for p in workers_of(shipper)}
        proxy.up()
        expected = expected_ids(logs / "app.json", "celery_json")
        wait_until(
            lambda: set(all_docs(es_url, f"logs-*-{cfg.namespace}*")) == set(expected),
            60,
            "every doc",
            shipper.tail,
        )
        wait_until(lambda: lag_zero(cfg), 20, "the checkpoint at the end", shipper.tail)
        children = workers_of(shipper)
        assert shipper.stop() == 0, shipper.tail()
        assert gone(children, 5)
    finally:
        shipper.ensure_dead()
        proxy.down()
    (death,) = deaths(shipper)
    assert death["log"]["level"] == "error" and death["exit"] == "killed by signal 9"
    assert not (cfg.data_dir / "dead-letter.ndjson").read_bytes()


def test_a_record_that_kills_its_worker_is_dead_lettered_and_the_rest_shipped(
    tmp_path: Path, es_url: str
) -> None:
    data = lines(500) + b'{"message": "POISON-PILL"}\n' + lines(500, start=500)
    logs, inputs = setup_files(tmp_path, data)
    env = poison_env(tmp_path, SHIPPER_TEST_POISON="1")
    cfg = write_config(tmp_path, es_url, inputs, workers=2)
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log", env=env)
    expected = expected_ids(logs / "app.json", "celery_json")
    poison_id = next(k for k, v in expected.items() if b"POISON-PILL" in v)
    try:
        shipper.start()
        shipper.wait_started()
        wanted = set(expected) - {poison_id}
        wait_until(
            lambda: set(all_docs(es_url, f"logs-*-{cfg.namespace}*")) == wanted,
            90,
            "every other doc",
            shipper.tail,
        )
        wait_until(lambda: lag_zero(cfg), 20, "the checkpoint at the end", shipper.tail)
        assert shipper.proc is not None and shipper.proc.poll() is None
        children = workers_of(shipper)
        assert len(children) == 2
        assert shipper.stop() == 0, shipper.tail()
        assert gone(children, 5)
    finally:
        shipper.ensure_dead()
    dead = [json.loads(line) for line in (cfg.data_dir / "dead-letter.ndjson").read_text().splitlines()]
    assert [d["_id"] for d in dead] == [poison_id]
    assert dead[0]["document"]["message"] == '{"message": "POISON-PILL"}'
    assert dead[0]["document"]["tags"] == ["unparsed", "worker_crash"]
    assert len(deaths(shipper)) == 2  # once as usual, once in careful mode: then it is known
    assert set(all_docs(es_url, f"logs-*-{cfg.namespace}*")) == set(expected) - {poison_id}


def test_kill_9_of_the_main_process_leaves_no_worker_and_frees_the_port(tmp_path: Path, es_url: str) -> None:
    logs, inputs = setup_files(tmp_path, lines(2000))
    port = free_port()
    cfg = write_config(tmp_path, es_url, inputs, workers=2, metrics=f"listen: 127.0.0.1:{port}")
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        wait_until(lambda: len(workers_of(shipper)) == 2, 30, "two workers", shipper.tail)
        children = workers_of(shipper)
        shipper.kill()
        assert gone(children, 3), [p.pid for p in children if p.is_running()]
        with socket.socket() as s:  # nobody keeps the metrics port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        with open(logs / "app.json", "ab") as f:
            f.write(lines(100, start=2000))
        shipper.start()
        shipper.wait_started()
        expected = expected_ids(logs / "app.json", "celery_json")
        wait_until(
            lambda: set(all_docs(es_url, f"logs-*-{cfg.namespace}*")) == set(expected),
            60,
            "every doc",
            shipper.tail,
        )
        children = workers_of(shipper)
        assert shipper.stop() == 0
        assert gone(children, 5)
    finally:
        shipper.ensure_dead()


def test_sigterm_ends_the_whole_tree_within_the_shutdown_timeout(tmp_path: Path) -> None:
    """Elasticsearch unreachable, the workers retrying with batches in hand: SIGTERM still ends
    every process within shutdown_timeout (10 s; plus the interpreter's exit)."""
    _logs, inputs = setup_files(tmp_path, lines(2000))
    cfg = write_config(
        tmp_path, f"http://127.0.0.1:{free_port()}", inputs, workers=2, es_extra="index_mode: daily_index"
    )
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        wait_until(lambda: len(workers_of(shipper)) == 2, 30, "two workers", shipper.tail)
        time.sleep(1.0)
        children = workers_of(shipper)
        assert shipper.proc is not None
        started = time.monotonic()
        shipper.proc.send_signal(signal.SIGTERM)
        code = shipper.proc.wait(30)
        took = time.monotonic() - started
        assert code == 0 and took < 10 + 1.5, (code, took)
        assert gone(children, 1)
    finally:
        shipper.ensure_dead()
    # Nothing was acknowledged: the next run starts from 0.
    assert not lag_zero(cfg)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHIPPER_TEST_POISON": "all"}, "shipping workers keep dying"),
        ({"SHIPPER_TEST_BROKEN_WORKER": "1"}, "shipping workers cannot start"),
    ],
    ids=["every-record-kills", "cannot-start"],
)
def test_workers_that_keep_dying_stop_the_shipper_promptly(
    tmp_path: Path, es_url: str, env: dict[str, str], message: str
) -> None:
    """Restarting cannot help: exit non-zero with one clear line, soon, leaving no process."""
    _logs, inputs = setup_files(tmp_path, lines(300))
    cfg = write_config(tmp_path, es_url, inputs, workers=2)
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log", env=poison_env(tmp_path, **env))
    try:
        shipper.start()
        shipper.wait_started()
        assert shipper.proc is not None
        parent = psutil.Process(shipper.proc.pid)
        seen: set[psutil.Process] = set()
        deadline = time.monotonic() + 60
        while shipper.proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                seen.update(parent.children(recursive=True))
            time.sleep(0.05)
        assert shipper.proc.wait(1) == 1, shipper.tail()
        assert gone(list(seen), 2)
    finally:
        shipper.ensure_dead()
    errors = [line for line in shipper.log.read_text().splitlines() if line.startswith("shipper: error:")]
    assert len(errors) == 1 and message in errors[0], shipper.tail()
    assert "Traceback" not in shipper.log.read_text().split("injected")[-1]
