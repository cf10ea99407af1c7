"""Documents refused for good, with the reason: NDJSON, 0600, fsynced, one complete line each.

A record is acknowledged (its file position may move on) only once it is indexed or written
here, so a refused document is never silently dropped and never retried forever.

How a write stays whole: the entries of one call are written as one buffer under an exclusive
``flock`` (the worker processes share the file). If the write or the fsync fails (disk full), the
file is cut back to its size before the write and :class:`DeadLetterError` is raised: no torn line
is left to merge with the next entry, and since nothing of the failed call remains, writing the
same entries again later (the caller retries; its records stay unacknowledged) cannot write any
of them twice. A torn end left by a crash in the middle of a write (``kill -9``) is cut away
before the next write; those records were not acknowledged and are refused, and written, again.

The file is opened with ``O_NOFOLLOW`` and must be a regular file with no other hard links,
owned by this user: a link planted in the data dir cannot redirect the appends elsewhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import stat
from collections.abc import Iterable
from typing import Any

import orjson

from ..errors import ShipperError
from .encode import Item, item_parts


class DeadLetterError(ShipperError):
    """The dead-letter file cannot be opened or written; the message says which and why."""


def _open(path: str) -> int:
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DeadLetterError(
                f"dead-letter file {path} is a symbolic link; refusing to follow it (remove it)"
            ) from None
        raise DeadLetterError(f"cannot open the dead-letter file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DeadLetterError(f"dead-letter file {path} is not a regular file; refusing to write to it")
        if st.st_nlink != 1:
            raise DeadLetterError(
                f"dead-letter file {path} has {st.st_nlink} hard links; refusing to write to it"
            )
        if st.st_uid != os.geteuid():
            raise DeadLetterError(
                f"dead-letter file {path} belongs to uid {st.st_uid}, not to this user; refusing to write"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class DeadLetterFile:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self.fd = _open(path)
        self.count = 0

    def write(self, entries: Iterable[tuple[Item, int, Any, str]]) -> int:
        """``(item, status, error, reason)`` per refused document; returns how many were written."""
        records = []
        for item, status, error, reason in entries:
            doc_id, index, document = item_parts(item)
            records.append(
                {
                    "_id": doc_id,
                    "_index": index,
                    "status": status,
                    "reason": reason,
                    "error": error,
                    "document": document,
                }
            )
        return self.write_entries(records)

    def write_entries(self, entries: list[dict[str, Any]]) -> int:
        """Write ready entries (``_id``, ``_index``, ``status``, ``reason``, ``error``, ``document``),
        all or nothing; raises :class:`DeadLetterError` if they cannot be written."""
        if not entries:
            return 0
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out = bytearray()
        for entry in entries:
            out += orjson.dumps({"@timestamp": now, **entry}, default=str)
            out += b"\n"
        self.append(bytes(out))
        self.count += len(entries)
        return len(entries)

    def append(self, data: bytes) -> None:
        """Append complete lines, all or nothing (see the module docstring)."""
        fd = self.fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            try:
                size = _whole_lines(fd)
            except OSError as exc:
                raise DeadLetterError(
                    f"cannot write the dead-letter file {self.path}: {exc.strerror}"
                ) from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):  # if even this fails: cut before the next write
                    os.ftruncate(fd, size)
                raise DeadLetterError(
                    f"cannot write the dead-letter file {self.path}: {exc.strerror}"
                ) from None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


def _whole_lines(fd: int) -> int:
    """The file's size after cutting an unfinished last line (from a crash or a failed cut-back):
    the offset just past its last newline."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            end = start + nl + 1
            break
        end = start
    os.ftruncate(fd, end)
    return end
