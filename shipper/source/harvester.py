"""One file identity being read: its source, its position, and its records.

A harvester follows a *content* identity, not a path: after ``create`` rotation it keeps reading
the renamed file; after ``copytruncate`` it may move to the copy to finish the bytes it had not
read; at start-up it may finish from a ``.gz``. The tailer decides those moves and calls the verbs
(:meth:`start`, :meth:`read`, :meth:`expire`, :meth:`move_to`, :meth:`suspend`, :meth:`resume`,
:meth:`stop`); the harvester reads and turns bytes into records, and reports what it noticed
(:attr:`changed`) without acting on it.

Reading a plain file uses ``pread`` starting ``TAIL_LEN`` bytes *before* the position and checks
those bytes against the ones read last time: a file truncated and rewritten past the position in
one go (same head, same inode) is caught on the next read, at no extra system call.

Where a timeout ended a record (a last line without newline, a traceback nobody continued), the
position is recorded as a *cut*; the tailer makes cuts durable before the record leaves, and a
harvester restarted after a crash ends records at the same cuts, so a re-read record gets the same
boundaries and the same id.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from ..config import InputConfig
from .checkpoint import CUT_LINE, CUT_RECORD
from .fingerprint import TAIL_LEN, Fingerprint, birth_time_ns_fd, is_compressed
from .lines import LineSplitter
from .multiline import ContinuationRule, Grouper
from .records import Record

log = logging.getLogger(__name__)

CHUNK = 256 * 1024

#: What :attr:`Harvester.changed` can say about the file under a plain harvester.
TRUNCATED_UNDER_US = "truncated"
REWRITTEN_UNDER_US = "rewritten"


@dataclass(frozen=True)
class Identity:
    """What a file *is*: the key of its records' ids, and how to recognise its content."""

    key: str
    fp: Fingerprint
    line0: str


@dataclass(eq=False)
class Harvester:
    input: InputConfig
    identity: Identity
    path: str
    #: Resolved path when ``path`` is a symlink (rotations happen next to the target).
    real_path: str | None
    dev: int
    ino: int
    splitter: LineSplitter
    grouper: Grouper
    #: End of the last record handed out: the next batch starts here.
    emitted_end: int
    last_data: float
    #: Open descriptor of a plain source; None when suspended, stopped, or reading a ``.gz``.
    fd: int | None = None
    #: Decompressing reader of a ``.gz`` source.
    gz: BinaryIO | None = None
    #: The last TAIL_LEN bytes before ``position`` as read (None: not known, no check).
    tail_bytes: bytes | None = None
    #: Seen at a path matching the input's globs in the last scan.
    live: bool = True
    #: The source cannot grow (a copy taken by rotation, or a ``.gz``).
    static: bool = False
    #: Unlinked (nlink 0) but still open: read to its end, then closed after a short grace.
    deleted: bool = False
    eof: bool = False
    #: The last chunk read ended where the file ended (at that instant).
    at_end: bool = False
    #: Closed for good: nothing more will be read; kept until its last batch is acknowledged.
    finished: bool = False
    #: Last size seen for the source (bytes that exist and may still be unread).
    last_size: int = 0
    #: Set by :meth:`read` when the file shrank or its bytes before the position changed.
    changed: str | None = None
    #: ``(offset, kind)`` cuts beyond the committed offset, in order (see the module docstring).
    cuts: list[tuple[int, int]] = field(default_factory=list)
    #: ``identity.key``, kept as a plain attribute: it is read for every record.
    key: str = ""
    #: Birth time of the source's inode (0: unknown): tells it from a later file on the same inode.
    birth: int = 0
    #: Index in ``cuts`` of the next cut to apply while reading.
    next_cut: int = 0
    #: A cut was made by a timeout since the tailer last looked (it must be saved first).
    new_cut: bool = False
    #: Written to while closed (a file-system event said so): if it vanishes before it is
    #: reopened, what was written is lost, though how much is not known.
    written_while_closed: bool = False
    #: The raw file under :attr:`gz` (closed with it).
    _gz_raw: BinaryIO | None = None

    @classmethod
    def start(
        cls,
        input_cfg: InputConfig,
        identity: Identity,
        path: str,
        real_path: str | None,
        st: os.stat_result,
        offset: int,
        rule: ContinuationRule | None,
        now: float,
        cuts: tuple[tuple[int, int], ...] = (),
    ) -> Harvester:
        """Open ``path`` and get ready to read from ``offset`` (raises OSError/EOFError)."""
        h = cls(
            input=input_cfg,
            identity=identity,
            path=path,
            real_path=real_path,
            dev=st.st_dev,
            ino=st.st_ino,
            splitter=LineSplitter(offset, input_cfg.max_line_bytes),
            grouper=Grouper(rule, input_cfg.max_line_bytes),
            emitted_end=offset,
            last_data=now,
            last_size=st.st_size,
            cuts=sorted(c for c in cuts if c[0] > offset),
            key=identity.key,
        )
        h._open(path, offset)
        return h

    # ------------------------------------------------------------------ properties

    @property
    def fp(self) -> Fingerprint:
        return self.identity.fp

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (records emitted plus what waits in the buffers)."""
        return self.splitter.position

    @property
    def compressed(self) -> bool:
        return is_compressed(self.path)

    @property
    def is_open(self) -> bool:
        return self.fd is not None or self.gz is not None

    @property
    def suspended(self) -> bool:
        """Closed to save a descriptor while idle; reopened when its file changes."""
        return not self.is_open and not self.finished

    @property
    def waiting(self) -> bool:
        """Holds a partial line or an open multi-line record that a timeout will close."""
        return self.splitter.has_partial or self.grouper.open

    # ------------------------------------------------------------------ verbs

    def _open(self, path: str, offset: int) -> None:
        """Open ``path``, which must still be the file ``dev``/``ino`` names: a rotation renaming
        files between the caller's ``stat`` and this ``open`` must not make one content read
        under another's identity (checked on the descriptor, plain and ``.gz`` alike)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.dev, self.ino):
                raise FileNotFoundError(f"{path} is another file now")
            self.birth = birth_time_ns_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        if is_compressed(path):
            raw = os.fdopen(fd, "rb")
            try:
                gz = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
                if offset:
                    gz.seek(offset)
            except zlib.error as exc:  # corrupt before the offset: as unreadable as a cut one
                raw.close()
                raise EOFError(f"{path}: {exc}") from None
            except BaseException:
                raw.close()
                raise
            self._gz_raw = raw
            self.gz, self.static = gz, True
            self.tail_bytes = None
            self.last_size = offset  # the compressed size says nothing about the content's length
            return
        try:
            k = min(TAIL_LEN, offset)
            before = os.pread(fd, k, offset - k) if k else b""
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.tail_bytes = before if len(before) == k else None
        self.last_size = st.st_size

    def read(self, max_bytes: int, now: float, max_records: int) -> list[Record]:
        """Read up to ``max_bytes``, stopping after the chunk that yields ``max_records``.

        Sets :attr:`changed` (and reads nothing more) when the file under a plain harvester was
        truncated or rewritten: the tailer decides what that means."""
        out: list[Record] = []
        if self.finished or self.changed:
            return out
        total = 0
        while total < max_bytes and len(out) < max_records:
            chunk = self._next_chunk()
            if not chunk:
                self.eof = True
                break
            self.eof = False
            total += len(chunk)
            self._feed(chunk, out)
            if self.at_end:
                self.eof = True  # read all the file held: no second call to learn that
                break
        if not self.changed:
            self.written_while_closed = False  # whatever was written is read (or being read)
        if total:
            self.last_data = now
        return out

    def _next_chunk(self) -> bytes:
        """The next bytes after the position; sets :attr:`at_end` when they are all the file held.

        One ``pread`` per call in the common case: it starts ``len(tail_bytes)`` before the
        position, so the same call checks that the file still holds what was read (shorter:
        truncated; other bytes: rewritten) and returns what follows."""
        self.at_end = False
        if self.gz is not None:
            try:
                return self.gz.read(CHUNK)
            except (OSError, EOFError, zlib.error) as exc:  # a .gz cut short or corrupt: ends here
                log.warning(
                    "compressed file unreadable past this point; the rest of it cannot be shipped",
                    extra={"path": self.path, "offset": self.splitter.position, "reason": str(exc)},
                )
                return b""
        fd = self.fd
        if fd is None:
            return b""
        pos = self.splitter.position
        tail = self.tail_bytes
        k = len(tail) if tail is not None else 0
        if tail is None and pos:
            # What precedes the position is not known (the file was shorter than the offset when
            # opened): only the size can tell a truncation.
            try:
                if os.fstat(fd).st_size < pos:
                    self.changed = TRUNCATED_UNDER_US
                    return b""
            except OSError:
                return b""
        try:
            data = os.pread(fd, CHUNK + k, pos - k)
        except OSError:
            return b""
        if k and data[:k] != tail:
            # last_size keeps the size seen while the content was intact: what was unread of it.
            self.changed = TRUNCATED_UNDER_US if len(data) < k else REWRITTEN_UNDER_US
            return b""
        chunk = data[k:] if k else data
        n = len(chunk)
        self.at_end = n < CHUNK
        if not n:
            return chunk
        if pos + n > self.last_size:
            self.last_size = pos + n
        # Invariant: tail_bytes, when known, is the file's bytes [max(0, pos - TAIL_LEN), pos).
        if n >= TAIL_LEN:
            self.tail_bytes = chunk[-TAIL_LEN:]
        elif tail is not None:
            self.tail_bytes = (tail + chunk)[-TAIL_LEN:]
        return chunk

    def check(self) -> bool:
        """Does the plain file under this harvester still hold what was read (not truncated, not
        rewritten)? Sets :attr:`changed` when it does not. One ``fstat`` and one ``pread``."""
        if self.changed:
            return False
        fd = self.fd
        if fd is None:
            return True
        pos = self.splitter.position
        try:
            size = os.fstat(fd).st_size
            tail = self.tail_bytes
            before = os.pread(fd, len(tail), pos - len(tail)) if tail else None
        except OSError:
            return True
        if size < pos:
            self.changed = TRUNCATED_UNDER_US
        elif tail and before != tail:
            self.changed = REWRITTEN_UNDER_US
        else:
            self.last_size = size
        return self.changed is None

    def _feed(self, chunk: bytes, out: list[Record]) -> None:
        cuts = self.cuts
        while self.next_cut < len(cuts):
            at, kind = cuts[self.next_cut]
            pos = self.splitter.position
            if at > pos + len(chunk):
                break
            head, chunk = chunk[: at - pos], chunk[at - pos :]
            if head:
                self.grouper.feed(self.splitter.feed(head), out)
            self._apply_cut(kind, out)
            self.next_cut += 1
        if chunk:
            self.grouper.feed(self.splitter.feed(chunk), out)

    def _apply_cut(self, kind: int, out: list[Record]) -> None:
        if kind & CUT_LINE:
            line = self.splitter.take_partial()
            if line is not None:
                self.grouper.feed((line,), out)
        if kind & CUT_RECORD:
            self.grouper.flush(out)

    def expire(self, now: float, force: bool = False) -> list[Record]:
        """At end of file: emit a partial last line and close an open multi-line record once their
        timeouts passed (or at once when ``force``: the file will not grow any more). Records each
        such cut, so a re-read after a crash cuts at the same place."""
        out: list[Record] = []
        if not self.eof:
            return out
        idle = now - self.last_data
        if self.splitter.has_partial and (force or idle >= self.input.partial_line_timeout):
            line = self.splitter.take_partial()
            if line is not None:
                self.grouper.feed((line,), out)
                self._record_cut(self.splitter.position, CUT_LINE)
        if self.grouper.open and (force or idle >= self.input.multiline_timeout):
            self.grouper.flush(out)
            self._record_cut(out[-1].end, CUT_RECORD)
        return out

    def _record_cut(self, at: int, kind: int) -> None:
        cuts = self.cuts
        if cuts and cuts[-1][0] == at:
            cuts[-1] = (at, cuts[-1][1] | kind)
        else:
            cuts.append((at, kind))
        self.next_cut = len(cuts)
        self.new_cut = True

    def cuts_after(self, committed: int) -> tuple[tuple[int, int], ...]:
        """The cuts still needed after ``committed`` (older ones are dropped)."""
        cuts = self.cuts
        if cuts and cuts[0][0] <= committed:
            drop = 0
            while drop < len(cuts) and cuts[drop][0] <= committed:
                drop += 1
            del cuts[:drop]
            self.next_cut = max(0, self.next_cut - drop)
        return tuple(cuts)

    def move_to(self, path: str, st: os.stat_result) -> None:
        """Continue the same content from another file (a copy or a .gz) at the same position."""
        self.close()
        self.dev, self.ino, self.path, self.real_path = st.st_dev, st.st_ino, path, None
        self._open(path, self.splitter.position)
        self.static, self.live, self.eof, self.changed = True, False, False, None

    def suspend(self) -> None:
        """Close the descriptor of an idle plain file; everything else is kept."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def resume(self, path: str | None = None) -> bool:
        """Reopen a suspended plain file (at ``path`` if it moved); False if it is another file."""
        if self.is_open or self.finished:
            return self.is_open
        target = path or self.path
        try:
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return False
        birth = birth_time_ns_fd(fd)
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) or (self.birth and birth and birth != self.birth):
            os.close(fd)
            return False
        self.fd, self.path = fd, target
        self.eof = False
        return True

    def stop(self) -> None:
        """Nothing more will be read: close for good (kept until its batches are acknowledged)."""
        self.close()
        self.finished = True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.gz is not None:
            self.gz.close()  # a GzipFile does not close the file object it was given
            self.gz = None
        if self._gz_raw is not None:
            self._gz_raw.close()
            self._gz_raw = None

    def fstat(self) -> os.stat_result | None:
        if self.fd is None:
            return None
        try:
            return os.fstat(self.fd)
        except OSError:
            return None
