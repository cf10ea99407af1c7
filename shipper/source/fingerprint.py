"""Content fingerprints of log files, and the document-id key derived for a file.

Two different questions, two answers:

- *Is this file the same content as one we know?* (a renamed file, a copytruncate copy, a ``.gz``)
  is answered by the file's *head*: the complete lines within its first ``MAX_HEAD`` bytes when it
  was first seen (``Fingerprint``), plus a digest of the bytes just before the committed offset.
  Log files are append-only, so those bytes never change for the life of the file, and a copy or a
  compressed copy has the same ones.
- *Which document ids does this file's records get?* is answered by the file's *key*, derived once
  when the file is first seen (``derive_key``) and stored in the checkpoint; every later location of
  the same content (renamed, copied, compressed) inherits it. The key mixes in the host, so two hosts
  shipping byte-identical files never share an id, and the inode and its birth time, so two files on
  one host never do either, however alike their bytes. It is a pure function of things that do not
  change while the file lives (host name, first line, inode number and birth time), so
  a shipper that lost its data dir derives the same key for a file it had already shipped and
  Elasticsearch answers 409 instead of indexing duplicates.
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

MAX_HEAD = 1024
#: Bytes before a position kept (as bytes while reading, as a digest in the checkpoint) to tell
#: that the content before it is still the content that was read.
TAIL_LEN = 64


class Fingerprint(NamedTuple):
    head_len: int
    digest: str  # hex


def digest_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


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


def first_line(head: bytes, allow_partial: bool = False) -> bytes | None:
    """The file's first line with its newline, at most ``MAX_HEAD`` bytes: fixed once complete.

    None while the first line is incomplete (unless ``allow_partial``: it timed out)."""
    head = head[:MAX_HEAD]
    nl = head.find(b"\n")
    if nl >= 0:
        return head[: nl + 1]
    if head and (allow_partial or len(head) >= MAX_HEAD):
        return head
    return None


def derive_key(host: str, line0: bytes, ino: int, birth_ns: int, generation: int = 0) -> str:
    """The id prefix of every record of one file (see the module docstring).

    ``birth_ns`` (the inode's creation time, 0 where the file system does not keep one) tells a
    reused inode from the file that had it before. ``generation`` tells apart what would still get
    the same key on one host: a file rewritten in place with the same first line keeps its inode
    and birth time.
    """
    material = b"\0".join(
        (b"shipper-key-v2", host.encode(), line0, b"%d" % ino, b"%d" % birth_ns, b"%d" % generation)
    )
    return digest_of(material)


class _StatxTimestamp(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32), ("_reserved", ctypes.c_int32))


class _Statx(ctypes.Structure):
    _fields_ = (
        ("stx_mask", ctypes.c_uint32),
        ("stx_blksize", ctypes.c_uint32),
        ("stx_attributes", ctypes.c_uint64),
        ("stx_nlink", ctypes.c_uint32),
        ("stx_uid", ctypes.c_uint32),
        ("stx_gid", ctypes.c_uint32),
        ("stx_mode", ctypes.c_uint16),
        ("_pad", ctypes.c_uint16),
        ("stx_ino", ctypes.c_uint64),
        ("stx_size", ctypes.c_uint64),
        ("stx_blocks", ctypes.c_uint64),
        ("stx_attributes_mask", ctypes.c_uint64),
        ("stx_atime", _StatxTimestamp),
        ("stx_btime", _StatxTimestamp),
        ("stx_ctime", _StatxTimestamp),
        ("stx_mtime", _StatxTimestamp),
        ("_rest", ctypes.c_uint64 * 18),
    )


_STATX_BTIME = 0x800


def _load_statx() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):  # not Linux, or a libc without statx
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)
    fn.restype = ctypes.c_int
    return fn


_statx = _load_statx()


def birth_time_ns(path: str) -> int:
    """The inode's creation time in ns (``statx``), or 0 where it is not known."""
    if _statx is None:
        return 0
    buf = _Statx()
    at_fdcwd = -100
    if _statx(at_fdcwd, os.fsencode(path), 0, _STATX_BTIME, ctypes.byref(buf)) != 0:
        return 0
    if not buf.stx_mask & _STATX_BTIME:
        return 0
    return int(buf.stx_btime.tv_sec) * 1_000_000_000 + int(buf.stx_btime.tv_nsec)


def birth_time_ns_fd(fd: int) -> int:
    """:func:`birth_time_ns` of an open file: no race with a rename of its path."""
    if _statx is None:
        return 0
    buf = _Statx()
    at_empty_path = 0x1000
    if _statx(fd, b"", at_empty_path, _STATX_BTIME, ctypes.byref(buf)) != 0:
        return 0
    if not buf.stx_mask & _STATX_BTIME:
        return 0
    return int(buf.stx_btime.tv_sec) * 1_000_000_000 + int(buf.stx_btime.tv_nsec)


def is_compressed(path: str) -> bool:
    return path.endswith(".gz")


def read_head_path(path: str, length: int = MAX_HEAD) -> bytes:
    """Head of a plain or gzip file (uncompressed bytes); empty if unreadable."""
    try:
        if is_compressed(path):
            with gzip.open(path, "rb") as gz:
                return gz.read(length)
        with open(path, "rb") as f:
            return f.read(length)
    except (OSError, EOFError, zlib.error):
        return b""


def read_range(path: str, start: int, length: int) -> bytes | None:
    """Uncompressed bytes ``[start, start + length)`` of a plain or gzip file; None if unreadable.

    For a ``.gz`` this decompresses up to ``start + length``: only used on rare paths (linking a
    compressed file to a known one), never per record."""
    try:
        if is_compressed(path):
            with gzip.open(path, "rb") as gz:
                gz.seek(start)
                return gz.read(length)
        with open(path, "rb") as f:
            return os.pread(f.fileno(), length, start)
    except (OSError, EOFError, zlib.error):
        return None


def matches(head: bytes, fp: Fingerprint) -> bool:
    """Does a file whose first bytes are ``head`` have identity ``fp``?"""
    return len(head) >= fp.head_len and digest_of(head[: fp.head_len]) == fp.digest


#: Bytes decompressed at a time when a ``.gz`` is compared with another file.
COPY_CHUNK = 256 * 1024


def last_line_end(path: str, size: int) -> int:
    """Where the last complete line of ``path``'s first ``size`` bytes ends (``start_at: end``)."""
    window = min(size, 65536)
    data = read_range(path, size - window, window) or b""
    nl = data.rfind(b"\n")
    return size - window + nl + 1 if nl >= 0 else size - window


def gz_length(path: str) -> int | None:
    """The uncompressed length modulo 2**32 from a ``.gz`` trailer (ISIZE); None if unreadable.
    A file of several members or still being written gives a wrong answer, never an error."""
    try:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            trailer = f.read(4)
    except OSError:
        return None
    return int.from_bytes(trailer, "little") if len(trailer) == 4 else None


def gz_is_prefix(gz_path: str, other: Callable[[int, int], bytes | None]) -> bool | None:
    """Is the uncompressed content of ``gz_path`` a prefix of the file ``other`` reads? None when
    the ``.gz`` is incomplete (still being written). Stops at the first difference."""
    try:
        with gzip.open(gz_path, "rb") as gz:
            pos = 0
            while True:
                try:
                    chunk = gz.read(COPY_CHUNK)
                except EOFError:
                    return None
                if not chunk:
                    return True
                if other(pos, len(chunk)) != chunk:
                    return False
                pos += len(chunk)
    except (OSError, zlib.error):
        return None
