"""Helpers for the second round of attacks on the real shipper process (tests/test_attack2_*.py)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.docs import get
from tests.support.es import all_docs
from tests.support.shipper_proc import ShipperConfigFile


def docs(es_url: str, cfg: ShipperConfigFile) -> dict[str, dict[str, Any]]:
    return all_docs(es_url, f"logs-*-{cfg.namespace}*")


def originals(es_url: str, cfg: ShipperConfigFile) -> Counter[str]:
    return Counter(str(get(d, "event.original")) for d in docs(es_url, cfg).values())


def settle(es_url: str, cfg: ShipperConfigFile, want: int, timeout: float = 20, quiet: float = 2.0) -> int:
    """Wait until at least ``want`` documents are indexed (or ``timeout``), then ``quiet`` seconds
    more so that anything still coming (duplicates) arrives; the final count."""
    deadline = time.monotonic() + timeout
    while len(docs(es_url, cfg)) < want and time.monotonic() < deadline:
        time.sleep(0.4)
    time.sleep(quiet)
    return len(docs(es_url, cfg))


def stopped_stats(log: Path) -> dict[str, int]:
    """files_lost / bytes_lost summed over every 'shipper stopped' line of the shipper's log."""
    out: Counter[str] = Counter()
    for raw in log.read_text(errors="replace").splitlines():
        if '"shipper stopped"' in raw:
            tailer = json.loads(raw).get("tailer", {})
            for k in ("files_lost", "bytes_lost"):
                out[k] += int(tailer.get(k, 0))
    return dict(out)


def warnings(log: Path) -> list[str]:
    """The messages of the shipper's WARNING lines."""
    out = []
    for raw in log.read_text(errors="replace").splitlines():
        if '"level":"warning"' in raw:
            out.append(str(json.loads(raw).get("message", "")))
    return out
