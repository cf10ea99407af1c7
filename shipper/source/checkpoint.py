"""Durable per-file positions: one versioned JSON file for all inputs.

Why one file written whole: a few hundred entries at most, rewritten at most once a second; an
atomic replace (temp file, fsync, rename, fsync of the directory) means a crash at any instant
leaves either the old or the new state, never a torn one. The file is created 0600: it holds paths
of log files, which can be sensitive.

An entry's ``offset`` only ever holds a position the sink acknowledged (see acks.py), so after a
``kill -9`` the shipper re-reads at most what was in flight; those records get the same ids again
and Elasticsearch answers 409, which counts as success.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from ..errors import ShipperError

VERSION = 1


class CheckpointError(ShipperError):
    """The checkpoint file exists but cannot be read or written."""


@dataclass(frozen=True)
class FileState:
    key: str  # content identity (fingerprint digest)
    input_id: str
    path: str  # where the file was last seen
    dev: int
    ino: int
    head_len: int
    head: str  # digest of the first head_len bytes (equals key unless the file was rewritten in place)
    offset: int  # acknowledged position: everything before it is indexed or dead-lettered
    #: File size when the entry was last written: bytes between offset and size were read but
    #: not yet acknowledged, and are known to be lost if the file disappears.
    size: int = 0
    tail: str | None = None  # digest of the bytes just before offset, to detect in-place rewrites
    finished: bool = False  # rotated away or deleted, and read to its end
    updated: float = 0.0  # wall-clock time of the last change


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class CheckpointStore:
    """In-memory map key -> FileState with atomic saves; owned by one thread (the tailer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._states: dict[str, FileState] = {}
        self._dirty = False
        self.saves = 0
        #: When this store was first created: rotated files older than that are history the
        #: shipper was never asked to ship.
        self.created = time.time()

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], name: str = "checkpoints.json") -> CheckpointStore:
        directory = Path(data_dir)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create data_dir {directory}: {exc.strerror}") from None
        store = cls(directory / name)
        if not store.load():
            store.save(force=True)  # record `created` now: a crash before the first save must not reset it
        return store

    def load(self) -> bool:
        """Load the file; False if there is none yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = orjson.loads(raw)
            if doc.get("version") != VERSION:
                raise CheckpointError(
                    f"{self.path}: unsupported checkpoint version {doc.get('version')!r} (expected {VERSION})"
                )
            self._states = {k: FileState(key=k, **v) for k, v in doc["files"].items()}
            self.created = float(doc.get("created", self.created))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CheckpointError(f"{self.path} is corrupt ({exc}); move it away to start over") from None
        return True

    def get(self, key: str) -> FileState | None:
        return self._states.get(key)

    def __iter__(self) -> Iterator[FileState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)

    def put(self, state: FileState) -> None:
        if self._states.get(state.key) != state:
            self._states[state.key] = replace(state, updated=time.time())
            self._dirty = True

    def remove(self, key: str) -> None:
        if self._states.pop(key, None) is not None:
            self._dirty = True

    def prune(self, older_than: float) -> list[str]:
        """Drop finished entries not updated since ``older_than`` (wall clock)."""
        gone = [s.key for s in self._states.values() if s.finished and s.updated < older_than]
        for key in gone:
            self.remove(key)
        return gone

    def save(self, force: bool = False) -> bool:
        if not (self._dirty or force):
            return False
        files: dict[str, Any] = {}
        for key, state in sorted(self._states.items()):
            entry = asdict(state)
            del entry["key"]
            files[key] = entry
        data = orjson.dumps(
            {"version": VERSION, "created": self.created, "files": files}, option=orjson.OPT_INDENT_2
        )
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            raise CheckpointError(f"cannot write {self.path}: {exc.strerror}") from None
        self._dirty = False
        self.saves += 1
        return True


@contextlib.contextmanager
def locked(data_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the data dir: two shippers on one checkpoint file would both
    ship everything and overwrite each other's positions.

    A POSIX record lock (``lockf``), not ``flock``: forked worker processes do not inherit it, so
    after a ``kill -9`` of the main process a lingering worker cannot keep a restart out.
    """
    import fcntl

    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN, depending on the system
            raise CheckpointError(f"another shipper is running on data_dir {directory}") from None
        yield
    finally:
        os.close(fd)
