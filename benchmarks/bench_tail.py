"""Tail + split throughput: the tailer reads a page-cached file to its end, grouping lines into
records with the Celery record-start rule, and a sink that acknowledges at once.

Run: python benchmarks/bench_tail.py FILE
Prints lines/s, CPU seconds per million lines (user+sys of this process) and peak RSS, and the
same for `wc -l FILE` as the physical floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

from shipper.config import InputConfig, WatchConfig
from shipper.source import CheckpointStore, Tailer


def celery_rule(first: bytes, line: bytes) -> bool:
    return not line.startswith(b"[")


def run_tailer(path: str, rule: bool) -> tuple[int, int, float, float]:
    with tempfile.TemporaryDirectory() as data:
        inp = InputConfig(id="bench", paths=(path,))
        watch = WatchConfig(max_pending_records=200_000, scan_interval=3600)
        tailer = Tailer(
            [inp], CheckpointStore.open(data), watch, rules={"bench": celery_rule if rule else None}
        )
        size = os.path.getsize(path)
        lines = records = 0
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        done = 0
        while done < size:
            for batch in tailer.poll():
                records += len(batch.records)
                lines += sum(r.data.count(b"\n") + 1 for r in batch.records) if rule else len(batch.records)
                done = batch.end
                tailer.ack(batch.seq)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        tailer.close()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return lines, records, wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--no-multiline", action="store_true")
    args = ap.parse_args()
    subprocess.run(["cat", args.file], stdout=subprocess.DEVNULL, check=True)  # page cache
    t0 = time.perf_counter()
    wc = subprocess.run(["wc", "-l", args.file], capture_output=True, text=True, check=True)
    wc_wall = time.perf_counter() - t0
    wc_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    wc_lines = int(wc.stdout.split()[0])
    lines, records, wall, cpu = run_tailer(args.file, rule=not args.no_multiline)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = os.path.getsize(args.file) / 1e6
    print(f"file: {args.file} ({size_mb:.0f} MB, {wc_lines:,} lines), Python {sys.version.split()[0]}")
    print(f"{'':24s} {'lines/s':>12s} {'CPU s / 1M lines':>17s} {'peak RSS MB':>12s}")
    print(
        f"{'wc -l':24s} {wc_lines / wc_wall:12,.0f} "
        f"{(wc_ru.ru_utime + wc_ru.ru_stime) / wc_lines * 1e6:17.3f} "
        f"{wc_ru.ru_maxrss / 1024:12.1f}"
    )
    label = "tailer (split+group)" if not args.no_multiline else "tailer (split only)"
    print(f"{label:24s} {lines / wall:12,.0f} {cpu / lines * 1e6:17.3f} {rss_mb:12.1f}")
    print(f"records: {records:,} (multi-line grouped), lines: {lines:,}")
    assert lines == wc_lines, (lines, wc_lines)


if __name__ == "__main__":
    main()
