"""Start a real Celery worker (prefork) on the real RabbitMQ, as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    queue: str
    nodename: str
    logfile: Path
    stderr: Path


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def celery_worker(
    tmp: Path,
    broker_url: str,
    *,
    logfile: str = "worker.log",
    concurrency: int = 2,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    app: str = "tests.celery_app",
) -> Iterator[Worker]:
    """Run ``celery worker`` until the block ends; stops it with SIGTERM (warm shutdown)."""
    queue = f"shipper-tests-{uuid.uuid4().hex[:8]}"
    nodename = f"{queue}@%h"
    env = {
        **os.environ,
        "SHIPPER_TEST_BROKER": broker_url,
        "SHIPPER_TEST_QUEUE": queue,
        "PYTHONPATH": str(REPO),
        **(extra_env or {}),
    }
    log_path = tmp / logfile
    stderr_path = tmp / "worker.stderr"
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        f"--logfile={log_path}",
        "-n",
        nodename,
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *extra_args,
    ]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=err, stderr=subprocess.STDOUT)
    worker = Worker(proc, queue, nodename, log_path, stderr_path)
    ready_file = Path(str(log_path).replace("%I", "").replace("%i", "0"))
    try:
        _wait_for(
            lambda: (
                proc.poll() is not None or (ready_file.exists() and b" ready." in ready_file.read_bytes())
            ),
            60,
            "the worker to log 'ready'",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}: {stderr_path.read_text()[-3000:]}")
        yield worker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
