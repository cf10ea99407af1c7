"""inotify wakes the tailer: with a scan interval of a minute, only an event can make a new file
show up within the test's wait. In polling mode the (short) scan interval does it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from shipper.config import WatchConfig
from shipper.source import Batch
from shipper.source.follow import follow
from tests.support.tailing import fast_input, make_tailer


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_events_trigger_reads_and_scans(tmp_path: Path, mode: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(b"first\n")
    # Polling observer: its own poll interval is scan_interval; keep it short only in that mode.
    watch = WatchConfig(mode=mode, scan_interval=0.2 if mode == "polling" else 60.0)  # type: ignore[arg-type]
    tailer = make_tailer(tmp_path / "data", [fast_input(str(logs / "*.log"))], watch=watch)
    tailer._next_scan = 0.0
    received: list[bytes] = []
    stop = threading.Event()

    def deliver(batches: list[Batch]) -> None:
        for b in batches:
            received.extend(r.data for r in b.records)
            tailer.ack(b.seq)

    thread = threading.Thread(target=follow, args=(tailer, watch, deliver, stop), daemon=True)
    thread.start()
    try:

        def wait_for(n: int) -> None:
            deadline = time.monotonic() + 10
            while len(received) < n and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(received) >= n, received

        wait_for(1)
        time.sleep(0.5)  # the watcher is scheduled on the directory after the first turn
        with open(logs / "a.log", "ab") as f:
            f.write(b"appended\n")
        wait_for(2)
        (logs / "b.log").write_bytes(b"new file\n")  # needs a scan: only the create event asks for one
        wait_for(3)
        assert received == [b"first", b"appended", b"new file"]
    finally:
        stop.set()
        thread.join(10)
        tailer.close()
    assert not thread.is_alive()
