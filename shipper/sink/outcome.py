"""Classify a bulk response item by item: pure, tested by direct calls.

An HTTP 200 bulk response can still hold failed items (``errors: true``); every item is checked.
Statuses: 201/200 created; 409 on ``create`` = this id is already indexed (a re-send after a crash)
= success; 429 and 5xx = retry that item with backoff; any other 4xx (mapping errors, bad index
names) = permanent: dead-letter it with the reason, never retry forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

INDEXED = "indexed"
DUPLICATE = "duplicate"
RETRY = "retry"
DEAD = "dead"


@dataclass(frozen=True)
class ItemOutcome:
    kind: str
    status: int
    error: Any = None


@dataclass
class Classified:
    indexed: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    dead: list[tuple[int, int, Any]] = field(default_factory=list)  # (position, status, error)


def classify_status(status: int) -> str:
    if status in (200, 201):
        return INDEXED
    if status == 409:
        return DUPLICATE
    if status == 429 or status >= 500:
        return RETRY
    return DEAD


def classify(response: Any, count: int) -> Classified:
    """Map a bulk response to positions in the request. A malformed or short response makes every
    item without an answer a retry (never a silent success)."""
    out = Classified()
    items: Sequence[Any] = response.get("items", ()) if isinstance(response, dict) else ()
    if isinstance(response, dict) and response.get("errors") is False and len(items) == count:
        out.indexed = list(range(count))
        return out
    for pos in range(count):
        entry = items[pos] if pos < len(items) else None
        result = next(iter(entry.values()), None) if isinstance(entry, dict) and entry else None
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int):
            out.retry.append(pos)
            continue
        kind = classify_status(status)
        if kind == INDEXED:
            out.indexed.append(pos)
        elif kind == DUPLICATE:
            out.duplicates.append(pos)
        elif kind == RETRY:
            out.retry.append(pos)
        else:
            out.dead.append((pos, status, result.get("error") if isinstance(result, dict) else None))
    return out
