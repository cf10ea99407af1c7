"""Quickstart orchestration (run by scripts/quickstart.sh, which installs the prerequisites)."""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".quickstart"
BIN = REPO / ".venv" / "bin"


TTY = sys.stdout.isatty()


def say(msg: str) -> None:
    print(f"\r\033[K{msg}" if TTY else msg, flush=True)


def progress(msg: str) -> None:
    """A line that updates in place on a terminal (and stays quiet in a log)."""
    if TTY:
        print(f"\r\033[K{msg}", end="", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - local URL
            return bool(r.status == 200)
    except OSError:
        return False


def start_local_es() -> tuple[str, subprocess.Popen[bytes]]:
    port = 9200 if port_free(9200) else free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(WORK / "noida.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            str(BIN / "noida-db"),
            "start",
            "--only",
            "elasticsearch",
            "--elasticsearch-port",
            str(port),
            "--data-dir",
            str(WORK / "noida"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        if http_ok(url):
            return url, proc
        if proc.poll() is not None:
            sys.exit(f"the local Elasticsearch-compatible server did not start: see {WORK / 'noida.log'}")
        time.sleep(0.2)
    sys.exit("the local Elasticsearch-compatible server did not answer in 60 s")


def write_config(es_url: str, metrics_port: int) -> Path:
    rabbit_logs = [p for p in glob.glob("/var/log/rabbitmq/rabbit@*.log") if os.access(p, os.R_OK)]
    rabbit = ""
    if rabbit_logs:
        rabbit = """
  - id: rabbitmq
    paths: ["/var/log/rabbitmq/rabbit@*.log"]
    exclude: ["*_upgrade.log", "*.gz"]
    parser: rabbitmq
"""
    cfg = WORK / "shipper.yml"
    cfg.write_text(f"""# Written by scripts/quickstart.py
data_dir: {WORK / "data"}
inputs:
  - id: celery
    paths: ["{WORK / "logs"}/*.log"]
    parser: celery_json
{rabbit}
output:
  elasticsearch:
    hosts: ["{es_url}"]
    batch: {{max_wait: 0.5}}
watch:
  scan_interval: 0.5
metrics:
  listen: 127.0.0.1:{metrics_port}
""")
    return cfg


def shipper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "shipper"), *args], capture_output=True, text=True, cwd=REPO, check=False
    )


def count_docs(es_url: str) -> int:
    import json

    try:
        urllib.request.urlopen(urllib.request.Request(f"{es_url}/logs-*/_refresh", method="POST"), timeout=10)  # noqa: S310
        with urllib.request.urlopen(f"{es_url}/logs-*/_count", timeout=10) as r:  # noqa: S310
            return int(json.loads(r.read())["count"])
    except OSError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    es_proc = None
    try:
        es_url = os.environ.get("ES_URL", "").rstrip("/")
        if es_url:
            say(f"[1/6] using Elasticsearch at {es_url} (ES_URL)")
        else:
            es_url, es_proc = start_local_es()
            say(f"[1/6] started the local Elasticsearch-compatible server at {es_url}")
        metrics_port = 9108 if port_free(9108) else free_port()
        cfg = write_config(es_url, metrics_port)
        out = shipper("setup", "-c", str(cfg))
        if out.returncode:
            sys.exit(out.stderr)
        say("[2/6] shipper setup: " + "; ".join(line for line in out.stdout.splitlines() if "mode" in line))
        with open(WORK / "shipper.log", "wb") as log:
            procs.append(
                subprocess.Popen([str(BIN / "shipper"), "run", "-c", str(cfg)], stderr=log, cwd=REPO)
            )
        say(f"[3/6] shipper run: following {WORK / 'logs'} and the RabbitMQ log; metrics on :{metrics_port}")
        queue = f"shipper-demo-{uuid.uuid4().hex[:6]}"
        env = {**os.environ, "DEMO_QUEUE": queue, "PYTHONPATH": str(REPO)}
        with open(WORK / "worker.stdout", "wb") as wout:
            worker = subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "shipper.demo.app",
                    "worker",
                    "--pool=prefork",
                    "--concurrency=2",
                    "--loglevel=INFO",
                    f"--logfile={WORK / 'logs' / 'worker-%I.log'}",
                    "-n",
                    f"{queue}@%h",
                    "-Q",
                    queue,
                    "--without-gossip",
                    "--without-mingle",
                ],
                env=env,
                stdout=wout,
                stderr=subprocess.STDOUT,
                cwd=WORK,
            )
        procs.append(worker)
        for _ in range(300):
            if any(b" ready." in p.read_bytes() for p in (WORK / "logs").glob("*.log")):
                break
            time.sleep(0.2)
        say(f"[4/6] Celery worker (prefork, 2 processes) logging ECS JSON to {WORK / 'logs'}")
        os.environ["DEMO_QUEUE"] = queue
        from shipper.demo.app import app, charge

        app.conf.task_default_queue = queue
        results = [charge.apply_async((i,), queue=queue) for i in range(1, args.tasks + 1)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = sum(r.ready() for r in results)
            progress(f"[5/6] tasks: {done}/{len(results)} finished")
            if done == len(results):
                break
            time.sleep(0.2)
        failed = sum(1 for r in results if r.failed())
        say(f"[5/6] tasks: {len(results)} finished, {failed} failed on purpose (orders divisible by 7)")
        with contextlib.suppress(Exception):  # a refused login shows up in the RabbitMQ log
            from kombu import Connection

            with Connection("amqp://guest:not-the-password@127.0.0.1:5672//", connect_timeout=3) as bad:
                bad.connect()
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 3 and time.monotonic() < deadline + 60:
            n = count_docs(es_url)
            if n != last:
                last, stable_since = n, time.monotonic()
            progress(f"[6/6] documents in Elasticsearch: {n}")
            time.sleep(0.5)
        say(f"[6/6] documents in Elasticsearch: {last}")
        print()
        print(shipper("summary", "-c", str(cfg)).stdout)
        print("Try next:")
        print(f"  .venv/bin/shipper search -c {cfg} 'log.level:error'")
        print(f"  .venv/bin/shipper search -c {cfg} --task-id <a task id from above>")
        print(f"  .venv/bin/shipper status -c {cfg}")
        print(f"  curl -s 127.0.0.1:{metrics_port}/metrics | grep ^shipper_")
        if args.keep:
            print(f"\nLeft running (--keep): the worker, the shipper and the server. Logs in {WORK}.")
            return
    finally:
        if not args.keep:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            if es_proc is not None:
                es_proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    es_proc.wait(20)


if __name__ == "__main__":
    main()
