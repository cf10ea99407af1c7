"""Drive a real Tailer over real files, with a real writer and the real logrotate."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipper.config import InputConfig, WatchConfig
from shipper.source import Batch, CheckpointStore, Tailer, record_id

FAST_WATCH = WatchConfig(
    scan_interval=0.05, close_inactive=0.5, checkpoint_interval=0.05, max_pending_records=50_000
)


def fast_input(pattern: str, **kw: object) -> InputConfig:
    opts: dict[str, object] = {"partial_line_timeout": 0.3, "multiline_timeout": 0.3}
    opts.update(kw)
    return InputConfig(id="test", paths=(pattern,), **opts)  # type: ignore[arg-type]


@dataclass
class Received:
    """What a sink saw: documents by id (as Elasticsearch would keep them) and every delivery."""

    by_id: dict[str, bytes] = field(default_factory=dict)
    deliveries: int = 0
    conflicts: list[str] = field(default_factory=list)

    def add(self, batch: Batch) -> None:
        for r in batch.records:
            doc_id = record_id(batch.source.key, r.offset)
            self.deliveries += 1
            if doc_id in self.by_id and self.by_id[doc_id] != r.data:
                self.conflicts.append(doc_id)
            self.by_id.setdefault(doc_id, r.data)

    def lines(self) -> Counter[bytes]:
        return Counter(line for data in self.by_id.values() for line in data.split(b"\n"))


def make_tailer(
    data_dir: Path,
    inputs: list[InputConfig],
    watch: WatchConfig = FAST_WATCH,
    rules: dict[str, object] | None = None,
) -> Tailer:
    return Tailer(inputs, CheckpointStore.open(data_dir), watch, rules=rules)  # type: ignore[arg-type]


def drain(
    tailer: Tailer, received: Received, until: Callable[[], bool], timeout: float = 30.0, ack: bool = True
) -> None:
    """Poll and ack until ``until()`` holds (then a few more turns), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in tailer.poll():
            received.add(batch)
            if ack:
                tailer.ack(batch.seq)
        if until():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out; have {len(received.by_id)} records")


class Writer(threading.Thread):
    """Appends numbered lines at a steady rate, like a logging process.

    ``reopen=True`` behaves like WatchedFileHandler (checks the inode before each write and reopens
    the path after rename rotation); ``reopen=False`` keeps its O_APPEND descriptor, as a process
    under copytruncate does. ``lock`` is held around each write: a test that holds it while
    logrotate runs closes logrotate's own copytruncate loss window.
    """

    def __init__(
        self,
        path: Path,
        count: int,
        interval: float = 0.001,
        reopen: bool = True,
        lock: threading.Lock | None = None,
        prefix: str = "line",
        seed: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.path, self.count, self.interval, self.reopen = path, count, interval, reopen
        self.lock = lock or threading.Lock()
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.written: list[bytes] = []

    def line(self, i: int) -> bytes:
        # "{i}" in the prefix gives each line its own value (e.g. distinct RabbitMQ timestamps).
        prefix = self.prefix.replace("{i}", f"{i:06d}")
        return f"{prefix} {i:07d} {'x' * self.rng.randint(0, 120)}".encode()

    def run(self) -> None:
        fd = -1
        ino = None
        for i in range(self.count):
            with self.lock:
                if fd < 0 or (self.reopen and self._inode() != ino):
                    if fd >= 0:
                        os.close(fd)
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    ino = os.fstat(fd).st_ino
                line = self.line(i)
                os.write(fd, line + b"\n")
                self.written.append(line)
            if self.interval:
                time.sleep(self.interval)
        os.close(fd)

    def _inode(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except FileNotFoundError:
            return None


def logrotate_conf(
    tmp: Path, log: Path, mode: str, compress: bool, delaycompress: bool, rotate: int = 50
) -> Path:
    lines = [f"{log} {{", f"    rotate {rotate}", f"    {mode}", "    missingok"]
    if compress:
        lines.append("    compress")
    if delaycompress:
        lines.append("    delaycompress")
    lines.append("}")
    conf = tmp / f"logrotate-{mode}.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def run_logrotate(binary: str, conf: Path, state: Path) -> None:
    out = subprocess.run(
        [binary, "-s", str(state), "-f", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
