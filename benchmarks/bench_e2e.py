"""End to end: a page-cached 1M-line Celery log -> `shipper run` (tail, parse, encode, gzip, bulk)
-> a bulk endpoint that acknowledges everything. Reports records/s, CPU seconds per million
records (user+sys of the shipper process tree) and peak RSS; then the same for a naive
`helpers.bulk` loop (read, parse with our parser, bulk through the official client).

Run: python benchmarks/bench_e2e.py [--lines 1000000] [--es-url URL]
With --es-url the documents go to a real server instead (e.g. noida-db) for a second figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

HERE = Path(__file__).parent
REPO = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def received(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_count_received", timeout=5) as r:
        return int(json.loads(r.read())["docs"])


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def peak_rss_mb(proc: psutil.Process) -> float:
    peak = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1])
        except OSError:
            pass
    return peak / 1024


def pss_mb(proc: psutil.Process) -> float:
    """Proportional set size of the process tree: pages shared by forked workers counted once."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def count_records(path: Path) -> int:
    from shipper.parse import PARSERS
    from shipper.source.lines import LineSplitter
    from shipper.source.multiline import Grouper

    sp, g = LineSplitter(0, 1 << 20), Grouper(PARSERS["celery"].continues, 1 << 20)
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            out: list = []  # type: ignore[type-arg]
            g.feed(sp.feed(chunk), out)
            n += len(out)
    return n + (1 if g.open else 0)


def run_shipper(log: Path, url: str, records: int, count: Callable[[], int], workers: int) -> dict:  # type: ignore[valid-type,type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "shipper.yml"
        cfg.write_text(f"""
data_dir: {tmp}/data
inputs:
  - id: bench
    paths: ["{log}"]
    parser: celery
output:
  elasticsearch:
    hosts: ["{url}"]
    index_mode: daily_index
    workers: {workers}
    batch: {{max_docs: 5000, max_bytes: 5242880, max_wait: 1.0}}
watch:
  max_pending_records: 50000
metrics:
  enabled: false
""")
        t0 = time.perf_counter()
        with open(Path(tmp) / "shipper.log", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=REPO, stderr=err
            )
        ps = psutil.Process(proc.pid)
        first = None
        cpu = 0.0
        peak_pss = 0.0
        while True:
            n = count()
            if n and first is None:
                first = time.perf_counter()
            if n >= records:
                break
            if proc.poll() is not None:
                raise RuntimeError((Path(tmp) / "shipper.log").read_text()[-3000:])
            cpu = tree_cpu(ps)
            peak_pss = max(peak_pss, pss_mb(ps))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        cpu = tree_cpu(ps)
        rss = peak_rss_mb(ps)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {"wall": wall, "cpu": cpu, "rss": rss, "pss": peak_pss}


NAIVE = r"""
import sys, time, resource
from elasticsearch import Elasticsearch, helpers
from shipper.config import InputConfig
from shipper.parse import InputParsing, ParseContext, build_document, PARSERS
from shipper.source.records import Record, SourceRef
path, url = sys.argv[1], sys.argv[2]
client = Elasticsearch(url, request_timeout=60)
ip = InputParsing.from_config(InputConfig(id="n", paths=(path,), parser="celery"), "bench")
ctx = ParseContext(ip.times, "2030-01-01T00:00:00.000Z")
src = SourceRef("n", "naive", path)
def actions():
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            rec = Record(offset, offset + len(line), line.rstrip(b"\n"))
            doc_id, dataset, doc = build_document(rec, src, ip, ctx)
            offset += len(line)
            yield {"_op_type": "create", "_index": "logs-celery.worker-naive", "_id": doc_id, "_source": doc}
for ok, item in helpers.streaming_bulk(client, actions(), chunk_size=5000, raise_on_error=False):
    pass
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--es-url")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    log = HERE / "data" / f"celery-text-{args.lines}.log"
    if not log.exists():
        subprocess.run(
            [sys.executable, str(HERE / "gen_celery_log.py"), str(log), "--lines", str(args.lines)],
            check=True,
        )
    subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)
    records = count_records(log)
    sink = None
    if args.es_url:
        url = args.es_url.rstrip("/")

        def count() -> int:
            try:
                with urllib.request.urlopen(f"{url}/logs-*/_count", timeout=10) as r:
                    return int(json.loads(r.read())["count"])
            except OSError:
                return 0
    else:
        port = free_port()
        sink = subprocess.Popen([sys.executable, str(HERE / "bulk_sink.py"), str(port)])
        url = f"http://127.0.0.1:{port}"
        time.sleep(0.5)

        def count() -> int:
            return received(url)

    try:
        print(
            f"# {platform.machine()} {psutil.cpu_count()} cores, Python {platform.python_version()}, "
            f"{log.name}: {args.lines:,} lines = {records:,} records, "
            f"sink: {'bulk endpoint' if sink else url}"
        )
        r = run_shipper(log, url, records, count, args.workers)
        print(
            f"shipper run (workers: {args.workers}): {records / r['wall']:,.0f} records/s "
            f"(wall {r['wall']:.1f}s), "
            f"{r['cpu'] / records * 1e6:.2f} CPU-s per 1M records, peak memory: {r['pss']:.0f} MB PSS "
            f"(sampled), {r['rss']:.0f} MB summed per-process RSS peaks"
        )
        if sink is not None and not args.skip_naive:
            before = received(url)
            t0 = time.perf_counter()
            naive = subprocess.Popen([sys.executable, "-c", NAIVE, str(log), url], cwd=REPO)
            ps = psutil.Process(naive.pid)
            cpu = 0.0
            while naive.poll() is None:
                cpu = tree_cpu(ps)
                rss = peak_rss_mb(ps)
                time.sleep(0.1)
            wall = time.perf_counter() - t0
            lines = received(url) - before
            print(
                f"naive helpers.streaming_bulk loop: {lines / wall:,.0f} records/s, "
                f"{cpu / lines * 1e6:.2f} CPU-s per 1M records, peak RSS {rss:.0f} MB, wall {wall:.1f}s"
            )
    finally:
        if sink is not None:
            sink.terminate()


if __name__ == "__main__":
    main()
