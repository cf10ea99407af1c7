"""/health, /metrics and request-level failures with the REAL `shipper run` and `shipper events`
processes, a real Elasticsearch-compatible server and a fault-injecting proxy in front of it."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.components import free_port
from tests.support.es import all_docs
from tests.support.faultproxy import FaultProxy
from tests.support.shipper_proc import REPO, ShipperProcess, expected_ids, write_config

pytestmark = pytest.mark.slow


def wait_until(pred: Callable[[], bool], timeout: float, what: str, tail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{tail()}"
        time.sleep(0.1)


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def health(port: int) -> tuple[int, dict[str, Any]]:
    code, body = get(f"http://127.0.0.1:{port}/health")
    return code, (json.loads(body) if code else {})


def app_logs(tmp: Path, lines: list[bytes]) -> tuple[Path, str]:
    logs = tmp / "logs"
    logs.mkdir()
    (logs / "app.json").write_bytes(b"".join(line + b"\n" for line in lines))
    return logs, f'  - id: app\n    paths: ["{logs}/*.json"]\n    parser: celery_json\n'


def doc_line(i: int, **extra: Any) -> bytes:
    return json.dumps({"@timestamp": "2026-11-24T10:00:00.000Z", "message": f"line {i}", **extra}).encode()


def log_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def test_wrong_proxy_path_404_is_retried_not_dead_lettered(tmp_path: Path, es_url: str) -> None:
    """1,000 documents behind a proxy answering 404 for /_bulk: nothing dead-lettered, the
    checkpoint stays, one ERROR line with the server's reason, /health 503; once the proxy is
    fixed everything is indexed."""
    logs, inputs = app_logs(tmp_path, [doc_line(i) for i in range(1000)])
    expected = expected_ids(logs / "app.json", "celery_json")
    proxy = FaultProxy(es_url, free_port())
    proxy.refuse = (404, b"<html><body>404 Not Found: no route /_bulk</body></html>", "text/html")
    port = free_port()
    cfg = write_config(tmp_path, proxy.url, inputs, metrics=f"listen: 127.0.0.1:{port}")
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        wait_until(lambda: proxy.refused >= 10, 30, "retries", shipper.tail)
        code, body = health(port)
        assert code == 503 and body["status"] == "unhealthy", body
        assert "404 Not Found" in body["problems"][0]
        assert (
            not (cfg.data_dir / "dead-letter.ndjson").exists()
            or not (cfg.data_dir / "dead-letter.ndjson").read_bytes()
        )
        status = subprocess.run(
            [sys.executable, "-m", "shipper", "status", "-c", str(cfg.path)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert status.stdout.split()[-4] == "0", status.stdout  # committed offset still 0
        proxy.refuse = None
        wait_until(
            lambda: set(all_docs(es_url, f"logs-*-{cfg.namespace}*")) == set(expected),
            60,
            "all docs",
            shipper.tail,
        )
        wait_until(lambda: health(port)[1].get("status") == "ok", 10, "healthy again", shipper.tail)
        assert shipper.stop() == 0
    finally:
        shipper.ensure_dead()
        proxy.down()
    assert not (cfg.data_dir / "dead-letter.ndjson").read_bytes()
    errors = [r for r in log_lines(shipper.log) if r["log"]["level"] == "error"]
    assert len(errors) == 1, errors  # rate-limited
    assert "HTTP 404" in errors[0]["reason"] and "no route /_bulk" in errors[0]["reason"]


def test_unreachable_from_the_start_metrics_are_up_and_health_turns_503(tmp_path: Path) -> None:
    """index_mode auto and nothing listening: /metrics and /health answer at once (503 starting);
    with a known index mode, records in flight and never a successful bulk: 503 after the
    threshold (2 s here), saying so."""
    dead_port = free_port()
    _logs, inputs = app_logs(tmp_path, [doc_line(i) for i in range(10)])
    port = free_port()
    cfg = write_config(
        tmp_path,
        f"http://127.0.0.1:{dead_port}",
        inputs,
        metrics=f"listen: 127.0.0.1:{port}, unhealthy_after: 2",
    )
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        wait_until(lambda: health(port)[0] != 0, 30, "the metrics endpoint", shipper.tail)
        code, body = health(port)
        assert code == 503 and body["status"] == "starting", body
        wait_until(
            lambda: "unreachable" in " ".join(health(port)[1]["problems"]), 10, "the reason", shipper.tail
        )
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 200
        assert shipper.stop() == 0
    finally:
        shipper.ensure_dead()

    tmp2 = tmp_path / "known-mode"
    tmp2.mkdir()
    cfg = write_config(
        tmp2,
        f"http://127.0.0.1:{dead_port}",
        inputs,
        metrics=f"listen: 127.0.0.1:{port}, unhealthy_after: 2",
        es_extra="index_mode: daily_index",
    )
    shipper = ShipperProcess(cfg.path, tmp2 / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        started = time.monotonic()
        wait_until(lambda: health(port)[0] == 503, 15, "503", shipper.tail)
        assert time.monotonic() - started >= 1.0
        body = health(port)[1]
        assert body["status"] == "unhealthy" and body["records_in_flight"] == 10
        assert (
            "no successful bulk request" in body["problems"][0] and "ConnectionError" in body["problems"][0]
        )
        assert shipper.stop() == 0
    finally:
        shipper.ensure_dead()


def test_dead_letter_storm_raises_the_alarm(tmp_path: Path, es_url: str) -> None:
    """Every document refused per item (a mapping conflict): dead-lettered, and an alarm: one
    ERROR line and /health degraded."""
    lines = [doc_line(i, process={"pid": "not a number"}) for i in range(60)]
    _logs, inputs = app_logs(tmp_path, lines)
    port = free_port()
    cfg = write_config(tmp_path, es_url, inputs, metrics=f"listen: 127.0.0.1:{port}")
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        wait_until(lambda: health(port)[1].get("status") == "degraded", 30, "degraded", shipper.tail)
        body = health(port)[1]
        assert health(port)[0] == 200 and "60 of 60 documents dead-lettered" in body["problems"][0], body
        assert shipper.stop() == 0
    finally:
        shipper.ensure_dead()
    alarms = [r for r in log_lines(shipper.log) if r["message"].startswith("dead-letter alarm")]
    assert len(alarms) == 1 and alarms[0]["log"]["level"] == "error"


def test_metrics_server_is_bounded_under_1000_idle_connections(tmp_path: Path, es_url: str) -> None:
    _logs, inputs = app_logs(tmp_path, [doc_line(1)])
    port = free_port()
    cfg = write_config(tmp_path, es_url, inputs, metrics=f"listen: 127.0.0.1:{port}")
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    socks: list[socket.socket] = []
    try:
        shipper.start()
        shipper.wait_started()
        assert shipper.proc is not None
        proc = psutil.Process(shipper.proc.pid)
        base = proc.num_threads()
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
        time.sleep(1.0)
        peak = proc.num_threads()
        assert peak <= base + 20, (base, peak)
        # Still serving: the idle ones time out (5 s) and a scrape gets through.
        wait_until(
            lambda: get(f"http://127.0.0.1:{port}/metrics", timeout=2)[0] == 200, 20, "a scrape", shipper.tail
        )
        assert proc.num_threads() <= base + 20
        assert shipper.stop() == 0
    finally:
        for s in socks:
            s.close()
        shipper.ensure_dead()


def test_verify_certs_false_warns_once_per_command(tmp_path: Path, es_url: str) -> None:
    _logs, inputs = app_logs(tmp_path, [doc_line(1)])
    cfg = write_config(tmp_path, es_url, inputs, workers=2, es_extra="verify_certs: false")
    setup = subprocess.run(
        [sys.executable, "-m", "shipper", "setup", "-c", str(cfg.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert setup.returncode == 0, setup.stderr
    warned = [line for line in setup.stderr.splitlines() if "verify_certs is false" in line]
    assert len(warned) == 1 and "NOT verified" in warned[0], setup.stderr
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        wait_until(
            lambda: len(all_docs(es_url, f"logs-*-{cfg.namespace}*")) == 1, 30, "the doc", shipper.tail
        )
        time.sleep(1)  # the workers are up and have logged whatever they log
        assert shipper.stop() == 0
    finally:
        shipper.ensure_dead()
    warnings = [r for r in log_lines(shipper.log) if "verify_certs is false" in r["message"]]
    assert len(warnings) == 1 and warnings[0]["log"]["level"] == "warning"


def test_events_command_serves_metrics_and_health(tmp_path: Path, es_url: str, broker_url: str) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        es_url,
        '  - id: none\n    paths: ["/nonexistent/*.log"]\n',
        metrics=f"listen: 127.0.0.1:{port}",
        extra=f"events: {{broker_url: '{broker_url}'}}",
    )
    events = ShipperProcess(cfg.path, tmp_path / "events.log", command="events")
    try:
        events.start()
        wait_until(lambda: health(port)[1].get("status") == "ok", 60, "healthy", events.tail)
        code, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        for name in (
            b"shipper_events_received_total",
            b"shipper_documents_indexed_total",
            b"shipper_documents_dead_lettered_total",
            b"shipper_events_unsent_total",
            b"shipper_last_successful_bulk_timestamp_seconds",
        ):
            assert name in metrics
        assert events.stop() == 0
    finally:
        events.ensure_dead()
    # Elasticsearch unreachable from the start: up at once, and 503.
    cfg = write_config(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        '  - id: none\n    paths: ["/nonexistent/*.log"]\n',
        metrics=f"listen: 127.0.0.1:{port}",
        extra=f"events: {{broker_url: '{broker_url}'}}",
    )
    events = ShipperProcess(cfg.path, tmp_path / "events2.log", command="events")
    try:
        events.start()
        wait_until(lambda: health(port)[0] == 503, 30, "503", events.tail)
        assert events.stop() == 0
    finally:
        events.ensure_dead()
