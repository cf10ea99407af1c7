"""Group lines into multi-line records with a parser's continuation rule: pure, no I/O.

Python tracebacks (Celery) and lager reports (RabbitMQ 3.7/3.8) continue on lines without the
record prefix; RabbitMQ 3.9+ repeats the prefix on every line of one message. A parser supplies
``continues(first_line, line) -> bool`` and the grouper does the rest. The last record stays open
until the next record starts or the caller closes it (timeout at end of file), so a checkpoint
never covers a record that is still growing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .lines import Line
from .records import TRUNCATED, Record

#: ``continues(first_line_of_record, line)``: is ``line`` part of the record ``first_line`` started?
ContinuationRule = Callable[[bytes, bytes], bool]


class Grouper:
    __slots__ = ("_end", "_first", "_flags", "_lines", "_offset", "_size", "max_record_bytes", "rule")

    def __init__(self, rule: ContinuationRule | None, max_record_bytes: int) -> None:
        self.rule = rule
        self.max_record_bytes = max_record_bytes
        self._lines: list[bytes] = []
        self._first = b""
        self._offset = 0
        self._end = 0
        self._flags = 0
        self._size = 0

    @property
    def open(self) -> bool:
        return bool(self._lines)

    @property
    def open_offset(self) -> int:
        """Start of the record still open (the checkpoint may not pass it)."""
        return self._offset

    def feed(self, lines: Iterable[Line], out: list[Record]) -> None:
        rule = self.rule
        if rule is None:
            out.extend(Record(o, e, d, f) for o, e, d, f in lines)
            return
        for offset, end, data, flags in lines:
            if self._lines and rule(self._first, data):
                if self._size + len(data) + 1 <= self.max_record_bytes:
                    self._lines.append(data)
                    self._size += len(data) + 1
                else:
                    self._flags |= TRUNCATED
                self._end = end
                self._flags |= flags
                continue
            if self._lines:
                out.append(self._close())
            self._lines = [data]
            self._first = data
            self._offset, self._end, self._flags, self._size = offset, end, flags, len(data)

    def flush(self, out: list[Record]) -> None:
        """Close the open record (end of file reached and the multi-line timeout passed)."""
        if self._lines:
            out.append(self._close())

    def _close(self) -> Record:
        lines = self._lines
        data = lines[0] if len(lines) == 1 else b"\n".join(lines)
        rec = Record(self._offset, self._end, data, self._flags)
        self._lines = []
        return rec
