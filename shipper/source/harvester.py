"""One open file identity being read: position, line splitting and multi-line grouping.

A harvester follows a *content* identity, not a path: after ``create`` rotation it keeps reading
the renamed file; after ``copytruncate`` it may switch to the copy to finish the bytes it had not
read; at start-up it may finish from a ``.gz``. The tailer decides those moves; the harvester only
reads and turns bytes into records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from ..config import InputConfig
from .fingerprint import Fingerprint, open_source
from .lines import LineSplitter
from .multiline import ContinuationRule, Grouper
from .records import Record

CHUNK = 256 * 1024


@dataclass(eq=False)
class Harvester:
    input: InputConfig
    fp: Fingerprint
    key: str
    path: str
    dev: int
    ino: int
    src: BinaryIO | None
    splitter: LineSplitter
    grouper: Grouper
    #: End of the last record handed out: the next batch starts here.
    emitted_end: int
    last_data: float
    #: Seen at a path matching the input's globs in the last scan.
    live: bool = True
    #: The file is not expected to grow (a copy, a .gz, a deleted or truncated-away file).
    static: bool = False
    #: Unlinked (nlink 0) but still open: read to its end, then closed after a short grace.
    deleted: bool = False
    eof: bool = False
    #: Closed: nothing more will be read; kept until its last batch is acknowledged.
    finished: bool = False

    @classmethod
    def open(
        cls,
        input_cfg: InputConfig,
        fp: Fingerprint,
        key: str,
        path: str,
        st: os.stat_result,
        offset: int,
        rule: ContinuationRule | None,
        now: float,
    ) -> Harvester:
        src = open_source(path)
        if offset:
            src.seek(offset)
        return cls(
            input=input_cfg,
            fp=fp,
            key=key,
            path=path,
            dev=st.st_dev,
            ino=st.st_ino,
            src=src,
            splitter=LineSplitter(offset, input_cfg.max_line_bytes),
            grouper=Grouper(rule, input_cfg.max_line_bytes),
            emitted_end=offset,
            last_data=now,
            static=path.endswith(".gz"),
        )

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (records emitted plus what waits in the buffers)."""
        return self.splitter.position

    @property
    def is_plain(self) -> bool:
        return self.src is not None and not self.path.endswith(".gz")

    def fileno(self) -> int | None:
        return self.src.fileno() if self.is_plain and self.src is not None else None

    def read(self, max_bytes: int, now: float, max_records: int) -> list[Record]:
        """Read up to ``max_bytes``, stopping after the chunk that yields ``max_records``."""
        out: list[Record] = []
        src = self.src
        if src is None or self.finished:
            return out
        total = 0
        while total < max_bytes and len(out) < max_records:
            try:
                chunk = src.read(CHUNK)
            except (OSError, EOFError):  # a .gz cut short by a crash of the compressor
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.eof = False
            total += len(chunk)
            self.grouper.feed(self.splitter.feed(chunk), out)
        if total:
            self.last_data = now
        return out

    def expire(self, now: float, force: bool = False) -> list[Record]:
        """At end of file: emit a partial last line and close an open multi-line record once their
        timeouts passed (or at once when ``force``: the file will not grow any more)."""
        out: list[Record] = []
        if not self.eof:
            return out
        idle = now - self.last_data
        if self.splitter.has_partial and (force or idle >= self.input.partial_line_timeout):
            line = self.splitter.take_partial()
            if line is not None:
                self.grouper.feed((line,), out)
        if self.grouper.open and (force or idle >= self.input.multiline_timeout):
            self.grouper.flush(out)
        return out

    def switch_to(self, path: str, st: os.stat_result) -> None:
        """Continue the same content from another file (a copy or a .gz) at the same position."""
        self.close()
        src = open_source(path)
        src.seek(self.splitter.position)
        self.src, self.path, self.dev, self.ino = src, path, st.st_dev, st.st_ino
        self.static, self.live, self.eof = True, False, False

    def close(self) -> None:
        if self.src is not None:
            self.src.close()
            self.src = None
