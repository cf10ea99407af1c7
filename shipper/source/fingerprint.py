"""Content identity of a log file.

Why content and not the inode: inodes are reused after rotation (a new ``app.log`` can get the
inode of a deleted one) and a copy (copytruncate) or a ``.gz`` of a file has a new inode but the
same bytes. The identity is a hash of the file's *head*: the complete lines within its first
``MAX_HEAD`` bytes at the time it is first seen. Log files are append-only, so those bytes never
change for the life of the file; a copy or a compressed copy has the same head; a truncated and
rewritten file does not.

``head_len`` is stored with the digest so that a file can be checked later by reading exactly the
same number of bytes, however much it has grown.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO, cast

MAX_HEAD = 1024


@dataclass(frozen=True)
class Fingerprint:
    head_len: int
    digest: str  # hex

    @property
    def key(self) -> str:
        return self.digest


def digest_of(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=12).hexdigest()


def fingerprint_head(head: bytes, allow_partial: bool = False) -> Fingerprint | None:
    """Fingerprint from the first bytes of a file (up to ``MAX_HEAD`` of them).

    Uses the complete lines in ``head``; if there is no newline yet, the file cannot be identified
    (and has no complete line to ship either) unless ``allow_partial`` (a final line without
    newline that timed out, or a head longer than ``MAX_HEAD`` with no newline).
    """
    head = head[:MAX_HEAD]
    cut = head.rfind(b"\n") + 1
    if cut == 0:
        if not head or not (allow_partial or len(head) >= MAX_HEAD):
            return None
        cut = len(head)
    return Fingerprint(cut, digest_of(head[:cut]))


def read_head_fd(fd: int, length: int = MAX_HEAD) -> bytes:
    return os.pread(fd, length, 0)


def read_head_path(path: str, length: int = MAX_HEAD) -> bytes:
    """Head of a plain or gzip file (uncompressed bytes); empty if unreadable."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as gz:
                return gz.read(length)
        with open(path, "rb") as f:
            return f.read(length)
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""


def matches(head: bytes, fp: Fingerprint) -> bool:
    """Does a file whose first bytes are ``head`` have identity ``fp``?"""
    return len(head) >= fp.head_len and digest_of(head[: fp.head_len]) == fp.digest


def open_source(path: str) -> BinaryIO:
    """Open a file for reading by the tailer: plain files raw, ``.gz`` decompressed."""
    if path.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return open(path, "rb", buffering=0)
