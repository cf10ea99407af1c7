"""Split a byte stream into complete lines: pure, no I/O.

The splitter keeps only the unfinished last line between calls, and of it never more than
``max_line_bytes``: a longer line is cut, flagged, and the rest skipped up to its newline. So one
huge line can neither exhaust memory nor stall the file, and the cut record still *ends* at its
newline, so a checkpoint never points into the middle of a line.
"""

from __future__ import annotations

from .records import NO_NEWLINE, TRUNCATED

Line = tuple[int, int, bytes, int]  # (offset, end, line without \n, flags)


class LineSplitter:
    """Feed consecutive chunks of one file; get ``(offset, end, line, flags)`` for complete lines.

    ``offset`` is where the line starts in the file, ``end`` where the next one starts. The line
    excludes the ``\\n`` (a ``\\r`` before it is kept: it belongs to the content).
    """

    __slots__ = ("_pending", "_pending_offset", "_skipping", "max_line_bytes", "position")

    def __init__(self, position: int, max_line_bytes: int) -> None:
        self.position = position  # file offset of the next byte to be fed
        self.max_line_bytes = max_line_bytes
        self._pending = b""  # start of the unfinished last line, at most max_line_bytes
        self._pending_offset = position
        self._skipping = False  # the unfinished line is longer than max_line_bytes

    @property
    def has_partial(self) -> bool:
        return bool(self._pending) or self._skipping

    def feed(self, chunk: bytes) -> list[Line]:
        out: list[Line] = []
        base = self.position
        self.position += len(chunk)
        limit = self.max_line_bytes
        start = 0
        if self._pending or self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                if not self._skipping:
                    self._pending += chunk
                    if len(self._pending) > limit:
                        self._pending = self._pending[:limit]
                        self._skipping = True
                return out
            line = self._pending if self._skipping else self._pending + chunk[:nl]
            flags = TRUNCATED if self._skipping or len(line) > limit else 0
            out.append((self._pending_offset, base + nl + 1, line[:limit], flags))
            self._pending = b""
            self._skipping = False
            start = nl + 1
        pieces = (chunk[start:] if start else chunk).split(b"\n")
        tail = pieces.pop()
        offset = base + start
        for line in pieces:
            end = offset + len(line) + 1
            if len(line) > limit:
                out.append((offset, end, line[:limit], TRUNCATED))
            else:
                out.append((offset, end, line, 0))
            offset = end
        self._pending_offset = offset
        if len(tail) > limit:
            self._pending, self._skipping = tail[:limit], True
        else:
            self._pending = tail
        return out

    def take_partial(self) -> Line | None:
        """Stop waiting for the newline of the unfinished last line (partial-line timeout).

        The line is emitted as it is, flagged; bytes appended later start a new line.
        """
        if not self.has_partial:
            return None
        flags = NO_NEWLINE | (TRUNCATED if self._skipping else 0)
        item = (self._pending_offset, self.position, self._pending, flags)
        self._pending = b""
        self._pending_offset = self.position
        self._skipping = False
        return item
