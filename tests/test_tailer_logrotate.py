"""The tailer against the REAL logrotate binary, while a writer appends continuously.

Every mode Debian users meet: create (rename + new file), create with compress and with
compress + delaycompress, copytruncate, and copytruncate with compress + delaycompress. The
exact multiset of lines received must equal the lines written: nothing lost, nothing twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.components import require_binary
from tests.support.tailing import (
    Received,
    Writer,
    drain,
    fast_input,
    logrotate_conf,
    make_tailer,
    run_logrotate,
)

MODES = [
    ("create", False, False),
    ("create", True, False),
    ("create", True, True),
    ("copytruncate", False, False),
    ("copytruncate", True, True),
]


@pytest.mark.parametrize(
    ("mode", "compress", "delaycompress"),
    MODES,
    ids=["create", "create-compress", "create-delaycompress", "copytruncate", "copytruncate-delaycompress"],
)
def test_logrotate_while_writing(tmp_path: Path, mode: str, compress: bool, delaycompress: bool) -> None:
    binary = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "worker.log"
    conf = logrotate_conf(tmp_path, log, mode, compress, delaycompress)
    state = tmp_path / "logrotate.state"
    lock = threading.Lock()
    # copytruncate loses lines written between its copy and its truncate (logrotate's own window,
    # not the shipper's): the writer pauses while logrotate runs in that mode.
    hold = mode == "copytruncate"
    writer = Writer(log, count=6000, interval=0.0003, reopen=(mode == "create"), lock=lock, seed=7)
    tailer = make_tailer(tmp_path / "data", [fast_input(str(logs / "*.log"))])
    received = Received()
    rotations = 0

    def rotate_loop() -> None:
        nonlocal rotations
        while writer.is_alive():
            time.sleep(0.15)
            if not log.exists():
                continue
            if hold:
                with lock:
                    run_logrotate(binary, conf, state)
            else:
                run_logrotate(binary, conf, state)
            rotations += 1

    writer.start()
    rotator = threading.Thread(target=rotate_loop, daemon=True)
    rotator.start()
    drain(tailer, received, lambda: not writer.is_alive() and not rotator.is_alive(), timeout=120)
    rotator.join()
    expected = Counter(writer.written)
    drain(tailer, received, lambda: received.lines() == expected, timeout=30)
    time.sleep(0.3)  # and nothing more arrives afterwards
    drain(tailer, received, lambda: True)
    stats = tailer.stats
    if mode == "create":
        assert stats.rotations >= 3 and stats.truncations == 0
    else:
        assert stats.truncations >= 3 and stats.resumed_from_copy == stats.truncations
    assert stats.files_lost == 0 and stats.records == len(writer.written)
    assert rotations >= 3
    assert received.lines() == expected
    assert received.deliveries == len(writer.written)  # not even a duplicate delivery
    assert not received.conflicts
    rotated = sorted(p.name for p in logs.iterdir())
    assert any(name.endswith(".gz") for name in rotated) == compress
