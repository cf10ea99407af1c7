"""Capture golden log samples from REAL components into tests/samples/.

Run on a dev machine with RabbitMQ running (it is restarted twice: once with the JSON log
formatter, once back to text). Not part of the test suite: the tests read what this wrote.

    .venv/bin/python scripts/capture_samples.py
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLES = REPO / "tests" / "samples"
NODE_LOG = Path(f"/var/log/rabbitmq/rabbit@{socket.gethostname().split('.')[0]}.log")
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def wait_port() -> None:
    for _ in range(120):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 5672)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError("RabbitMQ did not come up")


def broker_events() -> None:
    """Make RabbitMQ log the messages the saved searches look for."""
    import amqp
    from kombu import Connection

    # Successful connection, channel error (passive declare of a missing queue), clean close.
    with Connection(BROKER) as conn:
        ch = conn.channel()
        with contextlib.suppress(Exception):
            ch.queue_declare("no-such-queue-for-samples", passive=True)
    # Authentication failure.
    with contextlib.suppress(Exception), Connection("amqp://guest:wrong-password@127.0.0.1:5672//") as bad:
        bad.connect()
    # A client that vanishes without closing: "client unexpectedly closed TCP connection".
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ("import amqp,time; c=amqp.Connection('127.0.0.1:5672'); c.connect(); time.sleep(30)"),
        ]
    )
    time.sleep(2)
    child.kill()
    child.wait()
    # Missed heartbeats: negotiate a 2 s heartbeat and then never send one.
    hb = amqp.Connection("127.0.0.1:5672", heartbeat=2)
    hb.connect()
    time.sleep(9)
    with contextlib.suppress(Exception):
        hb.collect()
    # Memory and disk alarms, set and cleared.
    ctl("set_vm_memory_high_watermark", "0.000001")
    time.sleep(3)
    ctl("set_vm_memory_high_watermark", "0.4")
    time.sleep(2)
    ctl("set_disk_free_limit", "100000GB")
    time.sleep(12)
    ctl("set_disk_free_limit", "50MB")
    time.sleep(12)


def capture_rabbitmq(name: str) -> None:
    start = NODE_LOG.stat().st_size
    broker_events()
    with open(NODE_LOG, "rb") as f:
        f.seek(start)
        (SAMPLES / name).write_bytes(f.read())


def restart_node() -> None:
    subprocess.run(["rabbitmqctl", "stop"], capture_output=True, timeout=120)
    time.sleep(2)
    subprocess.run(["rabbitmq-server", "-detached"], check=True, capture_output=True, timeout=60)
    wait_port()
    time.sleep(3)


def capture_rabbitmq_json() -> None:
    conf = Path("/etc/rabbitmq/rabbitmq.conf")
    backup = conf.read_text() if conf.exists() else None
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text((backup or "") + "\nlog.file.formatter = json\n")
    try:
        restart_node()
        capture_rabbitmq("rabbitmq-3.10-json.log")
    finally:
        if backup is None:
            conf.unlink()
        else:
            conf.write_text(backup)
        restart_node()


def capture_celery() -> None:
    from tests.support.worker import celery_worker

    for app_name, sample in (
        ("tests.celery_app_plain", "celery-5.7-text.log"),
        ("tests.celery_app", "celery-5.7-json.log"),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            with celery_worker(Path(tmp), BROKER, app=app_name) as worker:
                os.environ["SHIPPER_TEST_QUEUE"] = worker.queue
                if app_name == "tests.celery_app_plain":
                    from tests import celery_app_plain as m

                    calls = [
                        m.charge.apply_async((1,), queue=worker.queue),
                        m.fail.apply_async((2,), queue=worker.queue),
                        m.retry.apply_async((3,), queue=worker.queue),
                        m.slow.apply_async(queue=worker.queue),
                    ]
                else:
                    from tests import celery_app as m  # type: ignore[no-redef]

                    calls = [
                        m.add.apply_async((1, 2), queue=worker.queue),
                        m.fail.apply_async(("sample",), queue=worker.queue),
                        m.retry_once.apply_async(queue=worker.queue),
                    ]
                for c in calls:
                    with contextlib.suppress(Exception):
                        c.get(timeout=60)
            shutil.copyfile(worker.logfile, SAMPLES / sample)


def capture_celery_broker_errors() -> None:
    """A worker whose broker is down at start, then lost while running."""
    import signal

    from tests.support.worker import REPO as _repo

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "w.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(_repo),
            "SHIPPER_TEST_BROKER": "amqp://guest:guest@127.0.0.1:5672//",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery_app_plain",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                f"--logfile={log}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(4)
        ctl("stop_app")  # the running worker loses its broker...
        time.sleep(6)
        ctl("start_app")  # ...and reconnects
        time.sleep(6)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.copyfile(log, SAMPLES / "celery-5.7-broker-errors.log")


def main() -> None:
    SAMPLES.mkdir(parents=True, exist_ok=True)
    wait_port()
    capture_celery_broker_errors()
    capture_celery()
    capture_rabbitmq("rabbitmq-3.10-text.log")
    capture_rabbitmq_json()
    for p in sorted(SAMPLES.iterdir()):
        print(p.name, sum(1 for _ in p.open("rb")), "lines")


if __name__ == "__main__":
    main()
