"""Turn out-of-order acknowledgements into a committable position per file.

The sink acknowledges batches in whatever order Elasticsearch finishes them (a batch with a 429
item waits for its retry while later batches succeed). A file's checkpoint may only advance over
the *contiguous* prefix of acknowledged batches: committing past an unacknowledged batch is how
Fluent Bit loses data on a crash.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class AckTracker:
    """Per key: batches in read order; ``committed(key)`` is the end of the acknowledged prefix.

    Each batch may carry a digest of the bytes just before its end (``tail``); the committed
    position's digest comes along, so the checkpoint can later tell whether a file still holds
    what was read, without reading it again."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[list[Any]]] = {}  # key -> [[seq, end, done, tail], ...]
        self._where: dict[int, tuple[str, list[Any]]] = {}  # seq -> (key, entry)
        self._committed: dict[str, int] = {}
        self._tails: dict[str, str | None] = {}
        self.in_flight_records = 0
        self._records: dict[int, int] = {}

    def start(self, key: str, position: int, tail: str | None = None) -> None:
        """Begin tracking ``key`` with everything before ``position`` already committed."""
        self._queues.setdefault(key, deque())
        if key not in self._committed:
            self._committed[key] = position
            self._tails[key] = tail

    def sent(self, key: str, seq: int, end: int, records: int, tail: str | None = None) -> None:
        entry = [seq, end, 0, tail]
        self._queues.setdefault(key, deque()).append(entry)
        self._where[seq] = (key, entry)
        self._records[seq] = records
        self.in_flight_records += records

    def ack(self, seq: int) -> str | None:
        """Mark a batch done; returns its key if that key's committed position moved."""
        found = self._where.pop(seq, None)
        if found is None:
            return None
        key, entry = found
        entry[2] = 1
        self.in_flight_records -= self._records.pop(seq)
        queue = self._queues[key]
        moved = False
        while queue and queue[0][2]:
            done = queue.popleft()
            self._committed[key] = done[1]
            self._tails[key] = done[3]
            moved = True
        return key if moved else None

    def committed(self, key: str) -> int | None:
        return self._committed.get(key)

    def committed_tail(self, key: str) -> str | None:
        """Digest of the bytes just before ``committed(key)``, when known."""
        return self._tails.get(key)

    def pending(self, key: str) -> int:
        """Batches of ``key`` not yet acknowledged."""
        return sum(1 for e in self._queues.get(key, ()) if not e[2])

    def forget(self, key: str) -> None:
        for entry in self._queues.pop(key, ()):
            if not entry[2]:
                self._where.pop(entry[0], None)
                self.in_flight_records -= self._records.pop(entry[0], 0)
        self._committed.pop(key, None)
        self._tails.pop(key, None)
