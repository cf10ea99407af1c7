"""kill -9 of a REAL shipper process, again and again, while a writer appends and the REAL
logrotate rotates (create + compress + delaycompress): after the last restart every line written
is in the output exactly once by id, and no id ever carried two different lines."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from tests.support.components import require_binary
from tests.support.tailing import Writer, logrotate_conf, run_logrotate

REPO = Path(__file__).resolve().parents[1]


def start_shipper(config: Path, output: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "shipper", "tail", "-c", str(config), "-o", str(output)],
            cwd=REPO,
            stdout=err,
            stderr=subprocess.STDOUT,
        )


def read_output(path: Path) -> tuple[dict[str, str], int, list[str]]:
    by_id: dict[str, str] = {}
    conflicts: list[str] = []
    torn = 0
    if not path.exists():
        return by_id, torn, conflicts
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            torn += 1  # a record cut by SIGKILL mid-write: it was never acknowledged
            continue
        if doc["_id"] in by_id and by_id[doc["_id"]] != doc["message"]:
            conflicts.append(doc["_id"])
        by_id.setdefault(doc["_id"], doc["message"])
    return by_id, torn, conflicts


def started(log: Path, pid: int) -> bool:
    """Did the process ``pid`` log that it is ready?"""
    for line in log.read_bytes().splitlines():
        if b'"message":"tail started"' in line and json.loads(line)["process"]["pid"] == pid:
            return True
    return False


def test_kill_9_and_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    binary = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "celery.log"
    config = tmp_path / "shipper.yml"
    config.write_text(
        f"""
data_dir: {tmp_path / "data"}
inputs:
  - id: celery
    paths: ["{logs}/*.log"]
    parser: celery
    multiline_timeout: 0.2
watch:
  scan_interval: 0.1
  checkpoint_interval: 0.2
  close_inactive: 1.0
metrics:
  enabled: false
"""
    )
    output = tmp_path / "out.ndjson"
    shipper_log = tmp_path / "shipper.log"
    conf = logrotate_conf(tmp_path, log, "create", compress=True, delaycompress=True)
    # Celery's text format, so the celery parser's record-start rule sees one record per line.
    writer = Writer(
        log,
        count=20_000,
        interval=0.0002,
        reopen=True,
        seed=3,
        prefix="[2026-11-24 10:00:00,000: INFO/MainProcess] line",
    )
    rng = random.Random(42)
    kills = 0
    proc = start_shipper(config, output, shipper_log)
    writer.start()

    def rotate() -> None:
        while writer.is_alive():
            time.sleep(0.4)
            if log.exists():
                run_logrotate(binary, conf, tmp_path / "logrotate.state")

    rotator = threading.Thread(target=rotate, daemon=True)
    rotator.start()
    try:
        while writer.is_alive() or kills < 5:
            time.sleep(rng.uniform(0.2, 0.7))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            proc = start_shipper(config, output, shipper_log)
        writer.join()
        rotator.join()
        expected = Counter(line.decode() for line in writer.written)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            by_id, torn, conflicts = read_output(output)
            if Counter(by_id.values()) == expected:
                break
            time.sleep(0.5)
        # Graceful stop: once the LAST process is ready (its signal handlers are installed when it
        # logs "tail started"). Its own line, by pid: a process killed before it logged anything
        # must not make the test wait for a line that never comes (or stop a process too early).
        while not started(shipper_log, proc.pid):
            assert proc.poll() is None, shipper_log.read_text()[-3000:]
            assert time.monotonic() < deadline + 30, shipper_log.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, shipper_log.read_text()[-3000:]
        assert b'"message":"tail stopped"' in shipper_log.read_bytes()
    finally:
        if proc.poll() is None:
            proc.kill()
    by_id, torn, conflicts = read_output(output)
    assert not conflicts
    missing = expected - Counter(by_id.values())
    extra = Counter(by_id.values()) - expected
    assert not missing and not extra, (len(missing), len(extra), shipper_log.read_text()[-2000:])
    assert torn <= kills
    assert kills >= 5
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "checkpoints.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o600
