"""Parser throughput: lines/s and CPU seconds per million lines, per format, over 1M-line files.

Run: python benchmarks/bench_parse.py [--lines N]
Inputs (made in benchmarks/data/ if missing): Celery text from gen_celery_log.py; Celery JSON
from our formatter; RabbitMQ text and JSON by repeating the real samples in tests/samples/ with
fresh timestamps. Splitting/grouping and document building are timed separately (CPU time).
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
from pathlib import Path

from shipper.config import InputConfig
from shipper.parse import PARSERS, InputParsing, ParseContext, build_document
from shipper.source.lines import LineSplitter
from shipper.source.multiline import Grouper
from shipper.source.records import Record, SourceRef

HERE = Path(__file__).parent
DATA = HERE / "data"
SAMPLES = HERE.parent / "tests" / "samples"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_inputs(lines: int) -> dict[str, Path]:
    DATA.mkdir(exist_ok=True)
    files = {
        "celery": DATA / f"celery-text-{lines}.log",
        "celery_json": DATA / f"celery-json-{lines}.log",
        "rabbitmq": DATA / f"rabbitmq-text-{lines}.log",
        "rabbitmq_json": DATA / f"rabbitmq-json-{lines}.log",
    }
    if not files["celery"].exists():
        subprocess.run(
            [sys.executable, str(HERE / "gen_celery_log.py"), str(files["celery"]), "--lines", str(lines)],
            check=True,
        )
    if not files["celery_json"].exists():
        from shipper.logconfig import CeleryContextFilter, EcsJsonFormatter

        fmt, ctx = EcsJsonFormatter(service_name="bench"), CeleryContextFilter("celery@bench")
        with open(files["celery_json"], "w") as f:
            for i in range(lines):
                rec = logging.LogRecord(
                    "celery.app.trace",
                    logging.INFO,
                    "/app/trace.py",
                    1,
                    "Task %s[%s] succeeded in %ss: %r",
                    ("billing.charge", f"id-{i}", 0.01, i),
                    None,
                )
                rec.celery_task_id, rec.celery_task_name = f"id-{i}", "billing.charge"  # type: ignore[attr-defined]
                ctx.filter(rec)
                f.write(fmt.format(rec) + "\n")
    for name, sample in (("rabbitmq", "rabbitmq-3.10-text.log"), ("rabbitmq_json", "rabbitmq-3.10-json.log")):
        if files[name].exists():
            continue
        base = (SAMPLES / sample).read_text().splitlines()
        with open(files[name], "w") as f:
            n = 0
            while n < lines:
                for line in base:
                    f.write(line + "\n")
                    n += 1
                    if n >= lines:
                        break
    return files


CHUNK = 256 * 1024  # what the tailer reads at a time


def bench(parser: str, path: Path) -> tuple[int, int, float, float]:
    data = path.read_bytes()
    ip = InputParsing.from_config(InputConfig(id="b", paths=("x",), parser=parser), hostname="bench")  # type: ignore[arg-type]
    ctx = ParseContext(ip.times, "2030-01-01T00:00:00.000Z")
    src = SourceRef("b", "k", str(path))
    splitter = LineSplitter(0, 1 << 20)
    grouper = Grouper(PARSERS[parser].continues, 1 << 20)
    group_s = parse_s = 0.0
    n_records = 0
    for start in range(0, len(data), CHUNK):
        c0 = cpu()
        records: list[Record] = []
        grouper.feed(splitter.feed(data[start : start + CHUNK]), records)
        if start + CHUNK >= len(data):
            grouper.flush(records)
        c1 = cpu()
        for r in records:
            build_document(r, src, ip, ctx)
        c2 = cpu()
        group_s += c1 - c0
        parse_s += c2 - c1
        n_records += len(records)
    return data.count(b"\n"), n_records, group_s, parse_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    files = make_inputs(args.lines)
    print(f"Python {sys.version.split()[0]}, {args.lines:,} lines per format; CPU seconds (user+sys)")
    print(
        f"{'parser':14s} {'records':>9s} {'group CPU s/1M':>15s} {'parse CPU s/1M':>15s} "
        f"{'lines/s (both)':>15s}"
    )
    for parser, path in files.items():
        lines, records, group_s, parse_s = bench(parser, path)
        print(
            f"{parser:14s} {records:9,d} {group_s / lines * 1e6:15.2f} {parse_s / lines * 1e6:15.2f} "
            f"{lines / (group_s + parse_s):15,.0f}"
        )


if __name__ == "__main__":
    main()
