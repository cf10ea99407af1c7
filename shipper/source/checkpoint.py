"""Durable per-file positions: a snapshot plus an append-only journal of what changed.

Why a journal: with thousands of files, rewriting every entry whenever one moved made each save
cost O(all files) and the first scan of 2,000 new files O(n^2). A save now appends only the changed
entries to ``checkpoints.journal.<generation>`` (one write, one fsync) and the snapshot
``checkpoints.json`` is rewritten (atomically: temp file, fsync, rename, fsync of the directory)
only when the journal has grown larger than it, so the cost of saving stays proportional to what
changed. A crash at any instant leaves a snapshot plus a journal whose last line may be torn; a torn
last line is ignored (it was never fsynced, so nothing was acknowledged on the strength of it).

Files are created 0600 in a private data dir and opened without following symlinks (datadir.py).

An entry's ``offset`` only ever holds a position the sink acknowledged (see acks.py), so after a
``kill -9`` the shipper re-reads at most what was in flight; those records get the same ids again
and Elasticsearch answers 409, which counts as success.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import orjson

from ..datadir import DataDirError, atomic_write, ensure_private_dir, fsync_dir, open_private
from ..errors import ShipperError

VERSION = 2
#: A journal smaller than this is never compacted (a snapshot of a few entries is tiny).
MIN_COMPACT_BYTES = 256 * 1024
#: The journal is folded into a new snapshot once it is this many times the snapshot's size: with
#: every entry changing every second, a snapshot per save would cost as much as no journal.
COMPACT_RATIO = 4

#: Cut kinds (bit set): where a timeout ended a record, so a re-read after a crash ends it there too.
CUT_LINE = 1  # a partial last line was emitted without its newline
CUT_RECORD = 2  # an open multi-line record was closed


class CheckpointError(ShipperError):
    """The checkpoint file exists but cannot be read or written."""


@dataclass(frozen=True)
class FileState:
    key: str  # id prefix of the file's records (fingerprint.derive_key), fixed for its life
    input_id: str
    path: str  # where the file was last seen (a glob match, a rotated name, or a copy)
    dev: int
    ino: int
    head_len: int
    head: str  # digest of the first head_len bytes
    offset: int  # acknowledged position: everything before it is indexed or dead-lettered
    #: File size when the entry was last written: bytes between offset and size were seen but
    #: not yet acknowledged, and are known to be lost if the file disappears.
    size: int = 0
    tail: str | None = None  # digest of the bytes just before offset, to detect in-place rewrites
    finished: bool = False  # rotated away or deleted, and read to its end
    #: Wall-clock time of the last change (not part of what the entry says: not compared).
    updated: float = field(default=0.0, compare=False)
    line0: str = ""  # digest of the first line: finds copies of this content without a scan of all
    #: The resolved path when ``path`` is a symlink: rotated files live next to the target.
    real_path: str | None = None
    #: ``(offset, kind)`` where a timeout ended a record beyond ``offset`` (CUT_LINE/CUT_RECORD).
    cuts: tuple[tuple[int, int], ...] = ()
    #: Birth time (ns) of the inode at ``dev``/``ino`` (0: unknown): a reused inode is another file.
    birth: int = 0


_FIELDS = tuple(f.name for f in fields(FileState) if f.name != "key")


def _decode_state(key: str, raw: dict[str, Any]) -> FileState:
    known = {k: v for k, v in raw.items() if k in _FIELDS}
    cuts = known.get("cuts")
    if cuts:
        known["cuts"] = tuple((int(a), int(b)) for a, b in cuts)
    return FileState(key=key, **known)


class CheckpointStore:
    """In-memory map key -> FileState with journaled saves; owned by one thread (the tailer).

    Also indexes entries by inode and by first-line digest, the two questions the tailer asks for
    every file it has not seen before."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._states: dict[str, FileState] = {}
        self._by_inode: dict[tuple[int, int], set[str]] = {}
        self._by_line0: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self.saves = 0
        #: When this store was first created: rotated files older than that are history the
        #: shipper was never asked to ship.
        self.created = time.time()
        self._generation = 0
        self._journal_fd: int | None = None
        self._journal_bytes = 0
        self._snapshot_bytes = 0

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], name: str = "checkpoints.json") -> CheckpointStore:
        try:
            ensure_private_dir(data_dir)
        except DataDirError as exc:
            raise CheckpointError(str(exc)) from None
        store = cls(Path(data_dir) / name)
        store.load()
        # Start from a fresh snapshot: folds the journal in, drops a torn last line, records
        # `created` (a crash before the first save must not reset it).
        store._compact()
        return store

    # ------------------------------------------------------------------ reading

    def _journal_path(self, generation: int) -> Path:
        stem = self.path.name.removesuffix(".json")
        return self.path.with_name(f"{stem}.journal.{generation}")

    def load(self) -> bool:
        """Load the snapshot and replay its journal; False if there is no checkpoint yet."""
        try:
            fd = open_private(self.path, os.O_RDONLY)
        except DataDirError as exc:
            if not os.path.lexists(self.path):
                return False
            raise CheckpointError(str(exc)) from None
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        try:
            doc = orjson.loads(raw)
            version = doc.get("version")
            if version not in (1, VERSION):
                raise CheckpointError(
                    f"{self.path}: unsupported checkpoint version {version!r} (expected {VERSION})"
                )
            states = {k: _decode_state(k, v) for k, v in doc["files"].items()}
            self.created = float(doc.get("created", self.created))
            self._generation = int(doc.get("journal", 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CheckpointError(f"{self.path} is corrupt ({exc}); move it away to start over") from None
        self._snapshot_bytes = len(raw)
        for state in states.values():
            self._index(state)
        self._states = states
        self._replay(self._journal_path(self._generation))
        return True

    def _replay(self, journal: Path) -> None:
        try:
            fd = open_private(journal, os.O_RDONLY)
        except DataDirError:
            if os.path.lexists(journal):
                raise CheckpointError(f"{journal}: cannot be read safely") from None
            return
        with os.fdopen(fd, "rb") as f:
            lines = f.read().split(b"\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                key, raw = orjson.loads(line)
                state = None if raw is None else _decode_state(key, raw)
            except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
                if i >= len(lines) - 2:  # the last line, torn by a crash mid-write: never fsynced
                    break
                raise CheckpointError(f"{journal} is corrupt ({exc}); move it away to start over") from None
            if state is None:
                self._drop(key)
            else:
                self._set(state)

    # ------------------------------------------------------------------ queries

    def get(self, key: str) -> FileState | None:
        return self._states.get(key)

    def at_inode(self, dev: int, ino: int) -> list[FileState]:
        """Entries last seen at this inode: several when a file was truncated or rewritten in
        place, or when the inode was reused. Newest first."""
        states = [self._states[k] for k in self._by_inode.get((dev, ino), ()) if k in self._states]
        return sorted(states, key=lambda s: s.updated, reverse=True)

    def by_line0(self, line0: str) -> list[FileState]:
        return [self._states[k] for k in self._by_line0.get(line0, ()) if k in self._states]

    def __iter__(self) -> Iterator[FileState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: str) -> bool:
        return key in self._states

    # ------------------------------------------------------------------ changes

    def _index(self, state: FileState) -> None:
        self._by_inode.setdefault((state.dev, state.ino), set()).add(state.key)
        if state.line0:
            self._by_line0.setdefault(state.line0, set()).add(state.key)

    def _unindex(self, state: FileState) -> None:
        at = self._by_inode.get((state.dev, state.ino))
        if at is not None:
            at.discard(state.key)
            if not at:
                del self._by_inode[(state.dev, state.ino)]
        keys = self._by_line0.get(state.line0)
        if keys is not None:
            keys.discard(state.key)
            if not keys:
                del self._by_line0[state.line0]

    def _set(self, state: FileState) -> None:
        old = self._states.get(state.key)
        self._states[state.key] = state
        if old is not None:
            if old.dev == state.dev and old.ino == state.ino and old.line0 == state.line0:
                return  # the common case, a position that moved: the indexes still hold
            self._unindex(old)
        self._index(state)

    def _drop(self, key: str) -> None:
        old = self._states.pop(key, None)
        if old is not None:
            self._unindex(old)

    def put(self, state: FileState) -> None:
        old = self._states.get(state.key)
        if old is not None and old == state:
            return
        self._set(state if state.updated else replace(state, updated=time.time()))
        self._dirty.add(state.key)

    def remove(self, key: str) -> None:
        if key in self._states:
            self._drop(key)
            self._dirty.add(key)

    def prune(self, older_than: float, keep: Callable[[FileState], bool] = lambda s: False) -> list[str]:
        """Drop finished entries not updated since ``older_than`` (wall clock), unless ``keep``
        says their file is still there (forgetting it would make its content look new)."""
        gone = [s.key for s in self._states.values() if s.finished and s.updated < older_than and not keep(s)]
        for key in gone:
            self.remove(key)
        return gone

    # ------------------------------------------------------------------ saving

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def save(self, force: bool = False) -> bool:
        """Make every change durable; False when there was nothing to save."""
        if not self._dirty and not force:
            return False
        lines = []
        for key in sorted(self._dirty):
            state = self._states.get(key)
            # orjson writes a dataclass natively (all fields, ``key`` included), in C.
            lines.append(orjson.dumps([key, state]))
        data = b"\n".join(lines) + b"\n" if lines else b""
        if force or self._journal_bytes + len(data) > max(
            MIN_COMPACT_BYTES, COMPACT_RATIO * self._snapshot_bytes
        ):
            self._compact()
        else:
            self._append(data)
        self._dirty.clear()
        self.saves += 1
        return True

    def _append(self, data: bytes) -> None:
        try:
            if self._journal_fd is None:
                self._journal_fd = open_private(
                    self._journal_path(self._generation), os.O_WRONLY | os.O_APPEND | os.O_CREAT
                )
            view = memoryview(data)
            while view:
                view = view[os.write(self._journal_fd, view) :]
            os.fsync(self._journal_fd)
        except (OSError, DataDirError) as exc:
            self._close_journal()
            # A journal left with a torn tail must not be appended to again: fold everything
            # into a new snapshot instead (or fail loudly if even that is impossible).
            try:
                self._compact()
            except CheckpointError:
                raise CheckpointError(f"cannot write {self.path.parent}: {exc}") from None
            return
        self._journal_bytes += len(data)

    def _compact(self) -> None:
        """Write everything into a new snapshot that names a new (empty) journal, then remove
        the old journal. A crash in between leaves either the old pair or the new one."""
        old_generation = self._generation
        self._close_journal()
        files = dict(sorted(self._states.items()))
        data = orjson.dumps(
            {"version": VERSION, "created": self.created, "journal": old_generation + 1, "files": files}
        )
        try:
            atomic_write(self.path, data)
        except (OSError, DataDirError) as exc:
            raise CheckpointError(f"cannot write {self.path}: {exc}") from None
        self._generation = old_generation + 1
        self._snapshot_bytes = len(data)
        self._journal_bytes = 0
        for stale in self.path.parent.glob(f"{self._journal_path(0).name[:-1]}*"):
            if stale != self._journal_path(self._generation):
                with contextlib.suppress(OSError):
                    stale.unlink()
        with contextlib.suppress(OSError):
            fsync_dir(str(self.path.parent))

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._journal_fd)
            self._journal_fd = None

    def close(self) -> None:
        """Fold the journal into the snapshot (a clean stop leaves one self-contained file)."""
        self._dirty.clear()
        self._compact()


@contextlib.contextmanager
def locked(data_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the data dir: two shippers on one checkpoint file would both
    ship everything and overwrite each other's positions.

    A POSIX record lock (``lockf``), not ``flock``: forked worker processes do not inherit it, so
    after a ``kill -9`` of the main process a lingering worker cannot keep a restart out.
    """
    import fcntl

    try:
        ensure_private_dir(data_dir)
        fd = open_private(Path(data_dir) / "lock", os.O_RDWR | os.O_CREAT)
    except DataDirError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN, depending on the system
            raise CheckpointError(f"another shipper is running on data_dir {data_dir}") from None
        yield
    finally:
        os.close(fd)
