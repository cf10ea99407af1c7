"""Reliability suite: everything at once, then count.

Two writers append Celery- and RabbitMQ-format lines at a steady rate while the REAL logrotate
rotates (create + compress + delaycompress for Celery, copytruncate for RabbitMQ), the REAL shipper
is SIGKILLed and restarted at random moments, and the Elasticsearch-compatible server, behind a
fault proxy, is unreachable for a while and answers 429s per item and 503s per request. Malformed
input is mixed in: invalid UTF-8, NUL bytes, a 5 MB line, truncated JSON, a binary file matching
the glob, and a document the server refuses.

At the end, by sequence number: every line written is in the index exactly once; the dead-letter
file holds exactly the refused document; the last shipper's counters add up; memory stayed bounded
during the outage. SOAK_SECONDS (default 30) makes it a longer soak.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.components import free_port, require_binary
from tests.support.es import es_client
from tests.support.faultproxy import FaultProxy
from tests.support.shipper_proc import ShipperProcess, write_config
from tests.support.tailing import Writer, logrotate_conf, run_logrotate

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("SOAK_SECONDS", "30"))  # 360 for the long soak
#: Lines per writer: 100/s, capped so one search per dataset still sees every document.
LINES = min(int(SECONDS * 100), 9_000)
INTERVAL = SECONDS / LINES
RSS_BOUND_MB = 150

INPUTS = """\
  - id: celery
    paths: ["{logs}/worker*.log"]
    parser: celery
    max_line_bytes: 1048576
    multiline_timeout: 0.3
  - id: rabbitmq
    paths: ["{logs}/rabbit@*.log"]
    parser: rabbitmq
    multiline_timeout: 0.3
  - id: app
    paths: ["{logs}/app*.json"]
    parser: celery_json
"""
SEQ = re.compile(r"\b(celery|rabbit) (\d{7})\b")


def rss_mb(pid: int) -> float:
    """RSS of the shipper and its worker processes together (shared pages counted per process:
    an upper bound)."""
    import psutil

    total = 0
    try:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            total += p.memory_info().rss
    except psutil.Error:
        pass
    return total / (1024 * 1024)


def all_messages(es_url: str, namespace: str) -> list[dict]:  # type: ignore[type-arg]
    client = es_client(es_url)
    client.indices.refresh(index=f"logs-*-{namespace}*", allow_no_indices=True)
    out = []
    for dataset in ("celery.worker", "rabbitmq.log"):
        resp = client.search(
            index=f"logs-{dataset}-{namespace}*",
            size=10_000,
            query={"match_all": {}},
            allow_no_indices=True,
            source=["message", "tags", "log.offset"],
        )
        hits = resp["hits"]["hits"]
        assert len(hits) < 10_000, "raise the search size"
        out += [h["_source"] for h in hits]
    return out


@pytest.mark.timeout(int(SECONDS * 2 + 300))  # the soak's own length, not the suite's default
def test_everything_at_once(tmp_path: Path, es_url: str) -> None:
    binary = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    celery_log, rabbit_log = logs / "worker.log", logs / "rabbit@node.log"
    rng = random.Random(2026)
    proxy = FaultProxy(es_url, free_port())
    proxy.reject_items = lambda doc_id: int(doc_id.rsplit("-", 1)[1], 16) % 11 == 0
    cfg = write_config(tmp_path, proxy.url, INPUTS.format(logs=logs), workers=2)
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    copy_lock = threading.Lock()
    celery_writer = Writer(
        celery_log,
        count=LINES,
        interval=INTERVAL,
        reopen=True,
        seed=1,
        prefix="[2026-11-24 10:00:00,000: INFO/MainProcess] celery",
    )
    rabbit_writer = Writer(
        rabbit_log,
        count=LINES,
        interval=INTERVAL,
        reopen=False,
        seed=2,
        lock=copy_lock,
        prefix="2026-11-24 10:00:00.{i}+00:00 [info] <0.1.0> rabbit",
    )
    celery_conf = logrotate_conf(tmp_path, celery_log, "create", compress=True, delaycompress=True)
    rabbit_conf = logrotate_conf(tmp_path, rabbit_log, "copytruncate", compress=True, delaycompress=True)
    stats = Counter()
    peak_rss_outage = 0.0
    stop = threading.Event()

    def rotate() -> None:
        while not stop.is_set():
            stop.wait(rng.uniform(2, 4))
            run_logrotate(binary, celery_conf, tmp_path / "state")
            with copy_lock:  # logrotate's own copytruncate loss window is not the shipper's to fix
                run_logrotate(binary, rabbit_conf, tmp_path / "state")
            stats["rotations"] += 1

    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        celery_writer.start()
        rabbit_writer.start()
        rotator = threading.Thread(target=rotate, daemon=True)
        rotator.start()
        # Malformed input, mixed in while everything runs.
        with open(logs / "worker-bad.log", "wb") as f:
            f.write(b"[2026-11-24 10:00:00,000: INFO/MainProcess] invalid utf8 \xff\xfe here\n")
            f.write(b"[2026-11-24 10:00:00,000: INFO/MainProcess] nul \x00\x00 bytes\n")
            f.write(b"[2026-11-24 10:00:00,000: INFO/MainProcess] huge " + b"x" * (5 * 1024 * 1024) + b"\n")
        (logs / "worker-binary.log").write_bytes(bytes(rng.getrandbits(8) for _ in range(20_000)))
        with open(logs / "app.json", "wb") as f:
            f.write(b'{"@timestamp": "2026-11-24T10:00:00.000Z", "message": "truncated json", "log": {"lev\n')
            f.write(
                b'{"@timestamp": "2026-11-24T10:00:00.000Z", "message": "refused", "process": {"pid": "x"}}\n'
            )
        deadline = time.monotonic() + SECONDS
        outage_done = False
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(1, 3))
            action = rng.choice(["kill", "kill", "503", "outage"])
            if action == "kill":
                shipper.kill()
                stats["kills"] += 1
                shipper.start()
                shipper.wait_started()
            elif action == "503":
                proxy.fail_requests += 3
            elif not outage_done:
                proxy.down()
                # 10 s in the default run; SOAK_SECONDS=360 gives the 2-minute outage.
                t_end = time.monotonic() + min(120.0, SECONDS / 3)
                while time.monotonic() < t_end:
                    assert shipper.proc is not None
                    peak_rss_outage = max(peak_rss_outage, rss_mb(shipper.proc.pid))
                    time.sleep(0.2)
                proxy.up()
                outage_done = True
                stats["outages"] += 1
        celery_writer.join()
        rabbit_writer.join()
        stop.set()
        rotator.join()
        written = {f"celery {i:07d}" for i in range(celery_writer.count)} | {
            f"rabbit {i:07d}" for i in range(rabbit_writer.count)
        }

        def seen() -> Counter[str]:
            return Counter(
                m.group(0)
                for d in all_messages(es_url, cfg.namespace)
                if (m := SEQ.search(d.get("message", "")))
            )

        end = time.monotonic() + 120
        while set(seen()) != written and time.monotonic() < end:
            time.sleep(1)
        time.sleep(2)  # anything late (duplicates) would show up now
        assert shipper.stop() == 0, shipper.tail()
    finally:
        stop.set()
        shipper.ensure_dead()
        proxy.down()
    counts = seen()
    lost = written - set(counts)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    docs = all_messages(es_url, cfg.namespace)
    tags = Counter(t for d in docs for t in d.get("tags", []))
    dead = [json.loads(line) for line in (cfg.data_dir / "dead-letter.ndjson").read_text().splitlines()]
    last = next(
        json.loads(line)
        for line in reversed(shipper.log.read_text().splitlines())
        if '"message":"shipper stopped"' in line
    )
    table = {
        "lines written": len(written),
        "indexed (unique)": len(counts),
        "duplicates": sum(duplicated.values()),
        "lost": len(lost),
        "dead-lettered": len(dead),
        "restarts (kill -9)": stats["kills"],
        "rotations": stats["rotations"],
        "outages": stats["outages"],
        "items refused with 429": len(proxy.rejected),
        "peak RSS during outage (MB)": round(peak_rss_outage, 1),
    }
    print("\n" + "\n".join(f"{k:32s} {v}" for k, v in table.items()))
    assert not lost, sorted(lost)[:10]
    assert not duplicated, list(duplicated.items())[:10]
    assert [d["document"]["message"] for d in dead] == ["refused"]
    assert tags["truncated"] >= 1 and tags["invalid_utf8"] >= 1 and tags["nul_bytes"] >= 1
    assert tags["unparsed"] >= 1  # the binary file's lines and the truncated JSON are shipped, flagged
    sink, tailer = last["sink"], last["tailer"]
    assert sink["indexed"] + sink["duplicates"] + sink["dead_lettered"] == tailer["records"]
    assert stats["kills"] >= 1 and stats["rotations"] >= 2
    assert peak_rss_outage < RSS_BOUND_MB
