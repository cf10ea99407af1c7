"""The shipped logrotate configs, run by the REAL logrotate (paths rewritten into tmp_path)
against a writer that behaves like the real ones (reopen on inode change) and the tailer."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.components import require_binary
from tests.support.tailing import Received, Writer, drain, fast_input, make_tailer, run_logrotate

REPO = Path(__file__).resolve().parents[1]


def rewrite(conf: str, directory: Path) -> str:
    """Point the config at ``directory`` and drop the owner from ``create`` (no such users here)."""
    conf = re.sub(r"/var/log/(celery|rabbitmq)/", f"{directory}/", conf)
    return re.sub(r"create (\d+) \S+ \S+", r"create \1", conf)


@pytest.mark.parametrize("name", ["celery", "rabbitmq"])
def test_shipped_config_rotates_without_loss_or_duplicates(tmp_path: Path, name: str) -> None:
    binary = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    conf = tmp_path / f"{name}.conf"
    conf.write_text(rewrite((REPO / "logrotate" / name).read_text(), logs))
    log = logs / ("worker.log" if name == "celery" else "rabbit@node.log")
    writer = Writer(log, count=3000, interval=0.0005, reopen=True, seed=11)
    tailer = make_tailer(tmp_path / "data", [fast_input(str(logs / "*.log"))])
    received = Received()
    writer.start()
    rotations = 0
    while writer.is_alive():
        drain(tailer, received, lambda: True)
        time.sleep(0.1)
        run_logrotate(binary, conf, tmp_path / "state")
        rotations += 1
    expected = Counter(writer.written)
    drain(tailer, received, lambda: received.lines() == expected, timeout=30)
    assert received.lines() == expected
    assert received.deliveries == len(writer.written)
    assert rotations >= 3
    names = sorted(p.name for p in logs.iterdir())
    assert any(n.endswith(".1") for n in names) and any(n.endswith(".gz") for n in names)  # delaycompress
