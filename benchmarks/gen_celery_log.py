"""Write a Celery worker log in the default text format (with tracebacks) for benchmarks.

Run: python benchmarks/gen_celery_log.py OUT --lines N
The mix resembles a busy worker: received / succeeded pairs, app log lines, warnings, and one
failure with a 6-line traceback every 200 tasks.
"""

from __future__ import annotations

import argparse
import os
import random
import uuid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = random.Random(1)
    names = ["billing.charge", "mail.send_receipt", "reports.build", "sync.pull_orders"]
    written = 0
    sec = 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # a fresh checkout
    with open(args.out, "w", buffering=1 << 20) as f:
        while written < args.lines:
            sec += 1
            hms = f"{sec // 3600 % 24:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
            ts = f"2026-11-24 {hms},{rng.randint(0, 999):03d}"
            tid = str(uuid.UUID(int=rng.getrandbits(128)))
            name = rng.choice(names)
            worker = f"ForkPoolWorker-{rng.randint(1, 8)}"
            f.write(f"[{ts}: INFO/MainProcess] Task {name}[{tid}] received\n")
            f.write(
                f"[{ts}: INFO/{worker}] {name}[{tid}]: processing order {rng.randint(1, 10**6)} for customer "
                f"{rng.randint(1, 10**5)}\n"
            )
            written += 2
            if written % 400 == 0:
                f.write(
                    f"[{ts}: ERROR/{worker}] Task {name}[{tid}] raised unexpected: "
                    f"ConnectionError('upstream timed out')\n"
                )
                f.write(
                    "Traceback (most recent call last):\n"
                    '  File "/app/venv/lib/python3.11/site-packages/celery/app/trace.py", '
                    "line 453, in trace_task\n"
                    "    R = retval = fun(*args, **kwargs)\n"
                    '  File "/app/billing/tasks.py", line 42, in charge\n'
                    "    raise ConnectionError('upstream timed out')\n"
                    "ConnectionError: upstream timed out\n"
                )
                written += 7
            else:
                f.write(f"[{ts}: INFO/{worker}] Task {name}[{tid}] succeeded in {rng.random():.6f}s: None\n")
                written += 1


if __name__ == "__main__":
    main()
