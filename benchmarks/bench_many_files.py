"""Many files at once: N Celery log files, each written at a steady rate by a separate writer
process, shipped by the real `shipper run` into a bulk endpoint that acknowledges everything.

Reports, for the shipper process only (the writer runs apart):
- the delay from the first line written to the first document received (files created after the
  shipper started, as when N workers start at once),
- CPU in steady state as a share of one core, and CPU seconds per million records,
- open file descriptors and peak RSS.

Run: python benchmarks/bench_many_files.py --files 2000 --rate 1 --seconds 20
     python benchmarks/bench_many_files.py --files 10000 --rate 0.1 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_e2e import free_port, peak_rss_mb, received  # noqa: E402

WRITER = r"""
import os, sys, time
directory, files, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
paths = [os.path.join(directory, f"worker-{i:05d}.log") for i in range(files)]
interval = 1.0 / (files * rate)  # one line every `interval` seconds, round robin over the files
start = time.monotonic()
print(time.time(), flush=True)  # wall clock of the first write
n = 0
while time.monotonic() - start < seconds:
    path = paths[n % files]
    if sys.argv[5] == "celery":
        line = (f"[2026-11-24 10:00:00,000: INFO/MainProcess] Task app.tasks.add[{n:08d}-0000-0000-0000-"
                f"000000000000] succeeded in 0.0012s: {n}\n").encode()
    else:
        line = (f'{{"@timestamp": "2026-11-24T10:00:00.000Z", "log": {{"level": "info"}}, '
                f'"message": "Task app.tasks.add succeeded in 0.0012s: {n}"}}\n').encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line)
    os.close(fd)
    n += 1
    delay = start + n * interval - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(n, flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=1.0, help="lines per second per file")
    ap.add_argument("--seconds", type=float, default=20.0, help="steady-state measurement")
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--mode", default="inotify", choices=["inotify", "polling"])
    ap.add_argument(
        "--parser",
        default="celery",
        choices=["celery", "celery_json"],
        help="celery: text lines, each record closed by the multi-line timeout (the worst case)",
    )
    ap.add_argument("--max-open-files", type=int, default=4096)
    ap.add_argument("--profile", help="write a py-spy flame graph of the steady state to this file")
    ap.add_argument("--cprofile", help="run the shipper under cProfile, writing its stats here")
    args = ap.parse_args()

    port = free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "bulk_sink.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        cfg = Path(tmp) / "shipper.yml"
        cfg.write_text(f"""
data_dir: {tmp}/data
inputs:
  - id: celery
    paths: ["{logs}/*.log"]
    parser: {args.parser}
output:
  elasticsearch:
    hosts: ["{url}"]
    index_mode: daily_index
    batch: {{max_docs: 5000, max_wait: 1.0}}
watch:
  mode: {args.mode}
  max_open_files: {args.max_open_files}
metrics:
  enabled: false
""")
        time.sleep(0.5)
        profiler = ["-m", "cProfile", "-o", args.cprofile] if args.cprofile else []
        shipper = subprocess.Popen(
            [sys.executable, *profiler, "-m", "shipper", "run", "-c", str(cfg)],
            cwd=REPO,
            stderr=open(Path(tmp) / "shipper.log", "wb"),  # noqa: SIM115
        )
        proc = psutil.Process(shipper.pid)
        try:
            deadline = time.monotonic() + 60
            while b"shipper started" not in (Path(tmp) / "shipper.log").read_bytes():
                assert shipper.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            total = args.warmup + args.seconds
            writer = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WRITER,
                    str(logs),
                    str(args.files),
                    str(args.rate),
                    str(total),
                    args.parser,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert writer.stdout is not None
            first_write = float(writer.stdout.readline())
            while received(url) == 0:
                time.sleep(0.01)
            first_doc = time.time() - first_write
            time.sleep(max(0.0, first_write + args.warmup - time.time()))
            cpu0, docs0, t0 = sum(proc.cpu_times()[:2]), received(url), time.monotonic()
            if args.profile:
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-r",
                        "1000",
                        "-p",
                        str(shipper.pid),
                        "-o",
                        args.profile,
                        "-d",
                        str(int(args.seconds)),
                        "-f",
                        "raw",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            fds = 0
            while time.monotonic() - t0 < args.seconds:
                fds = max(fds, proc.num_fds())
                time.sleep(0.5)
            cpu1, docs1, t1 = sum(proc.cpu_times()[:2]), received(url), time.monotonic()
            written = int(writer.stdout.readline())
            writer.wait(30)
            deadline = time.monotonic() + 60
            while received(url) < written and time.monotonic() < deadline:
                time.sleep(0.2)
            got = received(url)
            rss = peak_rss_mb(proc)
        finally:
            shipper.send_signal(signal.SIGTERM)
            shipper.wait(60)
            sink.terminate()
            sink.wait(10)
    steady = (cpu1 - cpu0) / (t1 - t0)
    records = docs1 - docs0
    print(
        f"# {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"mode {args.mode}, parser {args.parser}"
    )
    print(
        json.dumps(
            {
                "files": args.files,
                "lines_per_second": args.files * args.rate,
                "first_document_after_first_write_s": round(first_doc, 2),
                "steady_cpu_share_of_one_core": round(steady, 3),
                "cpu_s_per_million_records": round((cpu1 - cpu0) / max(records, 1) * 1e6, 1),
                "records_per_second": round(records / (t1 - t0)),
                "max_open_fds": fds,
                "peak_rss_mb": round(rss, 1),
                "written": written,
                "received": got,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
