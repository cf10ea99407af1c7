"""Hostile log lines fed to the REAL processes: `shipper run` (in process and with workers) and
`shipper tail --parse`. A ~1,020-deep JSON line used to crash-loop both (RecursionError)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.components import free_port
from tests.support.es import all_docs
from tests.support.shipper_proc import REPO, ShipperProcess, expected_ids, write_config

pytestmark = pytest.mark.slow

DEEP_ARRAY = (
    b'{"@timestamp": "2026-11-24T10:00:01.000Z", "message": "deep array", "x": '
    + b"[" * 1020
    + b"]" * 1020
    + b"}"
)
DEEP_OBJECT = b'{"message": "deep object", "x": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}"


def normal(i: int) -> bytes:
    return json.dumps(
        {"@timestamp": f"2026-11-24T10:00:{i % 60:02d}.000Z", "message": f"normal {i}"}
    ).encode()


def hostile_file(path: Path) -> None:
    lines = [normal(i) for i in range(20)]
    lines[5:5] = [DEEP_ARRAY]
    lines[12:12] = [DEEP_OBJECT]
    path.write_bytes(b"\n".join(lines) + b"\n")


def wait_until(pred, timeout: float, what: str, tail) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{tail()}"
        time.sleep(0.2)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
def test_deep_json_lines_are_shipped_flagged_and_the_file_goes_on(
    tmp_path: Path, es_url: str, workers: int
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    hostile_file(logs / "app.json")
    expected = expected_ids(logs / "app.json", "celery_json")
    port = free_port()
    cfg = write_config(
        tmp_path,
        es_url,
        f'  - id: app\n    paths: ["{logs}/*.json"]\n    parser: celery_json\n',
        workers=workers,
        metrics=f"listen: 127.0.0.1:{port}",
    )
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.start()
        shipper.wait_started()
        index = f"logs-*-{cfg.namespace}*"
        wait_until(lambda: set(all_docs(es_url, index)) == set(expected), 60, "every record", shipper.tail)
        # Alive, and the flagged records are counted in /metrics.
        assert shipper.proc is not None and shipper.proc.poll() is None
        wait_until(
            lambda: (
                b'shipper_records_flagged_total{reason="json_too_deep"} 2.0'
                in get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            10,
            "the json_too_deep counter",
            shipper.tail,
        )
        assert shipper.stop() == 0, shipper.tail()
    finally:
        shipper.ensure_dead()
    docs = all_docs(es_url, f"logs-*-{cfg.namespace}*")
    deep = {d["message"]: d for d in docs.values() if "deep" in d["message"]}
    assert set(deep) == {DEEP_ARRAY.decode(), DEEP_OBJECT.decode()}
    for doc in deep.values():
        assert doc["tags"] == ["unparsed", "json_too_deep"]
    assert sum(1 for d in docs.values() if d["message"].startswith("normal ")) == 20
    # The checkpoint moved over everything.
    status = subprocess.run(
        [sys.executable, "-m", "shipper", "status", "-c", str(cfg.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    size = (logs / "app.json").stat().st_size
    assert f" {size} " in status.stdout and status.stdout.split()[-2] == "0", status.stdout  # lag 0
    assert "Traceback" not in shipper.log.read_text()


def test_tail_parse_writes_every_record(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    hostile_file(logs / "app.json")
    cfg = write_config(
        tmp_path, "http://127.0.0.1:9", f'  - id: app\n    paths: ["{logs}/*.json"]\n    parser: auto\n'
    )
    out = tmp_path / "out.ndjson"
    with open(tmp_path / "tail.log", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", "tail", "--parse", "-c", str(cfg.path), "-o", str(out)],
            cwd=REPO,
            stdout=err,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_bytes().count(b"\n") >= 22):
            assert proc.poll() is None, (tmp_path / "tail.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "tail.log").read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == 22
    flagged = [d for d in docs if "json_too_deep" in d.get("tags", [])]
    assert [d["message"] for d in flagged] == [DEEP_ARRAY.decode(), DEEP_OBJECT.decode()]
