"""A real Elasticsearch-compatible server for the tests: noida-db on a free port, or ES_URL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.components import free_port, missing


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextmanager
def elasticsearch_server(tmp: Path) -> Iterator[str]:
    url = os.environ.get("ES_URL")
    if url:
        yield url.rstrip("/")
        return
    # Next to this interpreter first (the project's venv), then on PATH.
    beside = Path(sys.executable).parent / "noida-db"
    binary = str(beside) if beside.exists() else shutil.which("noida-db")
    if binary is None:
        missing("noida-db (pip install noida-db) or ES_URL")
    port = free_port()
    log = open(tmp / "noida.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            binary,
            "start",
            "--only",
            "elasticsearch",
            "--elasticsearch-port",
            str(port),
            "--data-dir",
            str(tmp / "noida"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # The noida-db command runs the server as a child process: terminating the command alone
        # left the server running after the tests. Its own process group is stopped as a whole.
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                missing(f"noida-db did not start: {(tmp / 'noida.log').read_text()[-500:]}")
            time.sleep(0.2)
        yield url
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group, SIGKILL to what is left after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def es_client(url: str) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, request_timeout=30)


def all_docs(url: str, index: str = "logs-*") -> dict[str, dict[str, Any]]:
    """Every document by _id (at most 10,000: the tests stay below)."""
    client = es_client(url)
    client.indices.refresh(index=index, allow_no_indices=True)
    resp = client.search(index=index, size=10_000, query={"match_all": {}}, allow_no_indices=True)
    hits = resp["hits"]["hits"]
    assert len(hits) < 10_000
    return {h["_id"]: h["_source"] for h in hits}
