"""Run the real ``shipper run`` as a subprocess, and compute what it must have indexed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from shipper.parse import PARSERS
from shipper.source.fingerprint import birth_time_ns, derive_key, first_line
from shipper.source.lines import LineSplitter
from shipper.source.multiline import Grouper
from shipper.source.records import Record, record_id

REPO = Path(__file__).resolve().parents[2]


def file_key(path: Path, host: str | None = None) -> str:
    """The id prefix a shipper on ``host`` (this machine by default) gives a file it meets first."""
    line = first_line(path.read_bytes()[:1024], allow_partial=True)
    assert line is not None
    return derive_key(host or socket.gethostname(), line, os.stat(path).st_ino, birth_time_ns(str(path)))


def expected_ids(path: Path, parser: str, host: str | None = None) -> dict[str, bytes]:
    """The ids (and raw records) a correct shipper indexes for a complete, unrotated file."""
    data = path.read_bytes()
    key = file_key(path, host)
    splitter, grouper = LineSplitter(0, 1 << 20), Grouper(PARSERS[parser].continues, 1 << 20)
    out: list[Record] = []
    grouper.feed(splitter.feed(data), out)
    grouper.flush(out)
    return {record_id(key, r.offset): r.data for r in out}


@dataclass
class ShipperConfigFile:
    path: Path
    data_dir: Path
    namespace: str


def write_config(
    tmp: Path,
    es_url: str,
    inputs: str,
    extra: str = "",
    workers: int = 0,
    metrics: str = "enabled: false",
    es_extra: str = "",
) -> ShipperConfigFile:
    """``metrics``: the body of the ``metrics:`` mapping (one line, e.g. ``listen: 127.0.0.1:9999``);
    ``es_extra``: more keys of ``output.elasticsearch`` (one line each, unindented)."""
    namespace = "t" + uuid.uuid4().hex[:8]
    data_dir = tmp / "data"
    path = tmp / "shipper.yml"
    es_lines = "".join(f"    {line}\n" for line in es_extra.splitlines() if line.strip())
    path.write_text(f"""
data_dir: {data_dir}
inputs:
{inputs}
output:
  elasticsearch:
    hosts: ["{es_url}"]
    namespace: {namespace}
    workers: {workers}
    request_timeout: 10
    batch: {{max_docs: 500, max_bytes: 1048576, max_wait: 0.2}}
    retry: {{initial_backoff: 0.05, max_backoff: 0.5}}
{es_lines}watch:
  scan_interval: 0.1
  checkpoint_interval: 0.2
  close_inactive: 1.0
metrics: {{{metrics}}}
{extra}
""")
    return ShipperConfigFile(path, data_dir, namespace)


class ShipperProcess:
    def __init__(
        self, config: Path, log: Path, command: str = "run", env: dict[str, str] | None = None
    ) -> None:
        self.config, self.log = config, log
        self.command, self.env = command, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def setup(self) -> None:
        """``shipper setup``: the index templates a real deployment installs before shipping."""
        out = subprocess.run(
            [sys.executable, "-m", "shipper", "setup", "-c", str(self.config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr

    def start(self) -> None:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shipper", self.command, "-c", str(self.config)],
                cwd=REPO,
                stdout=err,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.starts += 1

    def wait_started(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.log.read_bytes().count(b'"message":"shipper started"') < self.starts:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
