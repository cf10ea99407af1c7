"""Real components the tests need, and what happens when one is missing.

Outside CI a missing RabbitMQ or logrotate skips the test with the reason; with ``CI=true`` it
fails, so a CI run can never go green by skipping what it was meant to exercise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BROKER_URL = os.environ.get("SHIPPER_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"required test component missing in CI: {what}", pytrace=False)
    pytest.skip(f"component missing: {what}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_rabbitmq(timeout: float = 60.0) -> str:
    """Return the broker URL, starting the local rabbitmq-server if it is installed but not running."""
    if port_open("127.0.0.1", 5672):
        return BROKER_URL
    server = shutil.which("rabbitmq-server") or (
        "/usr/sbin/rabbitmq-server" if os.path.exists("/usr/sbin/rabbitmq-server") else None
    )
    if server is None:
        missing("rabbitmq-server (apt-get install rabbitmq-server)")
    subprocess.run([server, "-detached"], check=False, capture_output=True, timeout=60)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", 5672):
            return BROKER_URL
        time.sleep(0.5)
    missing("RabbitMQ did not open port 5672 after rabbitmq-server -detached")
    raise AssertionError("unreachable")


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        missing(f"{name} ({hint})")
        raise AssertionError("unreachable")
    return path
