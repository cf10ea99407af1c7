"""What the tailer hands to the next stage.

A :class:`Batch` is the unit of flow and of acknowledgement: the records of one file, in order,
covering the bytes ``[start, end)`` exactly. The tailer commits ``end`` once the sink acknowledged
the batch and every batch of the same file before it. Records inside are small named tuples, not
dataclasses, because there are a hundred thousand of them a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

#: Record flags (bit set).
TRUNCATED = 1  # the line was longer than max_line_bytes; the rest was skipped
NO_NEWLINE = 2  # a final line emitted after partial_line_timeout without its newline


class Record(NamedTuple):
    """One log record: a line, or a first line plus its continuation lines joined by ``\\n``."""

    offset: int  # byte offset of the first byte in the file (uncompressed)
    end: int  # offset just past the record, including its newline
    data: bytes  # without the trailing newline
    flags: int = 0


@dataclass(frozen=True)
class SourceRef:
    """Which file a batch came from. ``key`` is the content identity (see fingerprint.py)."""

    input_id: str
    key: str
    path: str


@dataclass(frozen=True)
class Batch:
    source: SourceRef
    start: int
    end: int
    records: tuple[Record, ...]
    #: Monotonic per tailer; acknowledgements name batches by it.
    seq: int


def record_id(key: str, offset: int) -> str:
    """Deterministic document id: the same bytes of the same content always get the same id,
    whether read from the live file, its renamed copy or its ``.gz``."""
    return f"{key}-{offset:x}"
