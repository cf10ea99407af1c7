"""Microseconds per record: our ECS formatter vs the stdlib text formatter, plain python-json-logger
and ecs-logging's StdlibFormatter. One process, same records, best of several rounds.

Run: python benchmarks/bench_formatter.py [--records N]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter
from pythonjsonlogger.orjson import OrjsonFormatter

from shipper.logconfig import CeleryContextFilter, EcsJsonFormatter

CELERY_TEXT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


def make_records(n: int) -> list[logging.LogRecord]:
    records = []
    for i in range(n):
        rec = logging.LogRecord(
            "celery.app.trace",
            logging.INFO,
            "/app/tasks.py",
            42,
            "Task %s[%s] succeeded in %ss: %r",
            ("tasks.add", f"id-{i}", 0.0012, i),
            None,
        )
        records.append(rec)
    return records


def per_record_us(
    fmt: Callable[[logging.LogRecord], str], records: list[logging.LogRecord], rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for rec in records:
            fmt(rec)
        best = min(best, time.perf_counter() - start)
    return best / len(records) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    records = make_records(args.records)
    ctx = CeleryContextFilter("celery@bench")
    ours = EcsJsonFormatter(service_name="bench")

    def ours_with_filter(rec: logging.LogRecord) -> str:
        ctx.filter(rec)
        return ours.format(rec)

    candidates: dict[str, Callable[[logging.LogRecord], str]] = {
        "stdlib text (celery default format)": logging.Formatter(CELERY_TEXT_FORMAT).format,
        "python-json-logger JsonFormatter": JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(processName)s %(message)s"
        ).format,
        "python-json-logger OrjsonFormatter": OrjsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(processName)s %(message)s"
        ).format,
        "ours: EcsJsonFormatter + context filter": ours_with_filter,
    }
    try:
        import ecs_logging

        candidates["ecs-logging StdlibFormatter"] = ecs_logging.StdlibFormatter().format
    except ImportError:
        pass
    results = {name: per_record_us(fn, records, args.rounds) for name, fn in candidates.items()}
    base = results["stdlib text (celery default format)"]
    pjl = results["python-json-logger JsonFormatter"]
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{args.records} records, best of {args.rounds}"
    )
    print(f"{'formatter':45s} {'us/record':>10s} {'x stdlib':>9s} {'x pjl':>7s}")
    for name, us in results.items():
        print(f"{name:45s} {us:10.2f} {us / base:9.2f} {us / pjl:7.2f}")


if __name__ == "__main__":
    main()
