"""Documents Elasticsearch refused for good, with the reason: NDJSON, 0600, fsynced.

A record is acknowledged (its file position may move on) only once it is indexed or written
here, so a refused document is never silently dropped and never retried forever.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

import orjson

from .encode import Item, item_parts


class DeadLetterFile:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.count = 0

    def write(self, entries: Iterable[tuple[Item, int, Any, str]]) -> int:
        """``(item, status, error, reason)`` per refused document; returns how many were written."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out = bytearray()
        n = 0
        for item, status, error, reason in entries:
            doc_id, index, document = item_parts(item)
            out += orjson.dumps(
                {
                    "@timestamp": now,
                    "_id": doc_id,
                    "_index": index,
                    "status": status,
                    "reason": reason,
                    "error": error,
                    "document": document,
                },
                default=str,
            )
            out += b"\n"
            n += 1
        if n:
            view = memoryview(out)
            while view:
                view = view[os.write(self.fd, view) :]
            os.fsync(self.fd)
            self.count += n
        return n

    def close(self) -> None:
        os.close(self.fd)
