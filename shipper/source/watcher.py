"""File-system wake-ups for the tailer: inotify on the watched directories, and a waker.

Events are hints, not truth: the queue overflows, renames into an unwatched directory look like
deletes, NFS sends nothing. So an event only makes the tailer read a file (modify) or scan (create,
move, delete, overflow) *sooner*; the periodic scan finds everything anyway. ``mode: polling``
turns inotify off (network file systems, some containers) and relies on the scan alone.

Why inotify through ``ctypes`` and no watcher thread: with thousands of files written every
second, a thread per observer plus an event object per change costs more CPU than reading the
lines. Here the tailer's own loop reads the raw event buffer (one ``read`` for many events), and
waits on the inotify descriptor and a self-pipe with one ``select``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import struct
import time
from typing import Any

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_WATCH_MASK = (
    IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
)
_WATCH_MASK |= IN_MOVE_SELF | IN_ONLYDIR
_RESCAN = IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
_RESCAN |= IN_Q_OVERFLOW | IN_IGNORED
_EVENT = struct.Struct("iIII")
#: After an event wakes the loop, wait this long for more before reading: a thousand files written
#: in the same millisecond are then read in one turn instead of a thousand.
COALESCE = 0.1
#: Paths built from (watch, name) events are remembered (thousands of files each written every
#: second) up to this many, then forgotten all at once.
PATH_CACHE = 65536


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None


class Inotify:
    """A non-blocking inotify instance watching directories (not recursively)."""

    def __init__(self) -> None:
        libc = _libc()
        if libc is None or not hasattr(libc, "inotify_init1"):
            raise OSError(errno.ENOSYS, "inotify is not available")
        self._libc = libc
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self._dirs: dict[int, str] = {}  # wd -> directory
        self._paths: dict[tuple[int, bytes], str] = {}  # (wd, name) -> path

    def fileno(self) -> int:
        return self.fd

    def add(self, directory: str) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), _WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), directory)
        self._dirs[wd] = directory
        self._paths.clear()  # the same number may now mean another directory
        return int(wd)

    def remove(self, wd: int) -> None:
        self._dirs.pop(wd, None)
        self._paths.clear()
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> tuple[set[str], bool]:
        """Drain the queue: ``(paths written to, something was created/moved/deleted)``."""
        changed: set[str] = set()
        rescan = False
        dirs = self._dirs
        paths = self._paths
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                return changed, True
            if not buf:
                break
            pos, end = 0, len(buf)
            while pos + 16 <= end:
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                name = buf[pos + 16 : pos + 16 + length].rstrip(b"\0")
                pos += 16 + length
                if mask & _RESCAN:
                    rescan = True
                    if mask & IN_IGNORED:
                        dirs.pop(wd, None)
                        paths.clear()  # a watch number may be handed out again
                if mask & (IN_MODIFY | IN_CLOSE_WRITE) and name:
                    path = paths.get((wd, name))
                    if path is None:
                        directory = dirs.get(wd)
                        if directory is None:
                            continue
                        if len(paths) >= PATH_CACHE:
                            paths.clear()
                        path = paths[(wd, name)] = os.path.join(directory, os.fsdecode(name))
                    changed.add(path)
        return changed, rescan

    def close(self) -> None:
        """Idempotent: a second close must not hit a descriptor reused since."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1


class DirectoryWatcher:
    """Watches a changing set of directories; ``mode: polling`` (``enabled=False``) watches none."""

    def __init__(self, enabled: bool = True) -> None:
        self._inotify: Inotify | None = None
        if enabled:
            try:
                self._inotify = Inotify()
            except OSError as exc:
                log.warning("inotify unavailable (%s); relying on the periodic scan", exc)
        self._watches: dict[str, int | None] = {}

    def fileno(self) -> int | None:
        return self._inotify.fd if self._inotify is not None else None

    def update(self, directories: set[str]) -> bool:
        """Watch exactly ``directories``; True if a new one was added (scan it: events before
        the watch existed are lost)."""
        ino = self._inotify
        if ino is None:
            return False
        added = False
        for d in directories - self._watches.keys():
            try:
                self._watches[d] = ino.add(d)
                added = True
            except OSError as exc:  # inotify watch limit, permission, gone: the scan still works
                if exc.errno != errno.ENOENT:
                    log.warning("cannot watch %s (%s); relying on the periodic scan", d, exc.strerror)
                self._watches[d] = None
        for d in self._watches.keys() - directories:
            wd = self._watches.pop(d)
            if wd is not None:
                with contextlib.suppress(OSError):
                    ino.remove(wd)
        return added

    @property
    def complete(self) -> bool:
        """Are events arriving for every directory asked for (none failed, inotify on)?"""
        return self._inotify is not None and bool(self._watches) and None not in self._watches.values()

    def watching(self, directory: str) -> bool:
        """Do inotify events arrive for ``directory``?"""
        return self._inotify is not None and self._watches.get(directory) is not None

    def changes(self) -> tuple[set[str], bool]:
        if self._inotify is None:
            return set(), False
        return self._inotify.read()

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._watches.clear()


class Waker:
    """What the tailer's loop sleeps on: ``set()`` from any thread (an acknowledgement, a stop),
    or a file-system event on the watcher's descriptor."""

    def __init__(self, watcher: DirectoryWatcher | None = None) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watcher = watcher

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"!")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._r, 4096):
                pass

    def is_set(self) -> bool:
        ready, _, _ = select.select([self._r], [], [], 0)
        return bool(ready)

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set, a file-system event, or ``timeout``; True unless it timed out."""
        fds = [self._r]
        fd = self._watcher.fileno() if self._watcher is not None else None
        if fd is not None:
            fds.append(fd)
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError):  # closed meanwhile (shutdown)
            return True
        if ready and self._r not in ready:
            time.sleep(COALESCE)
        return bool(ready)

    def close(self) -> None:
        """Idempotent: a second close must not hit descriptors reused since."""
        for fd in (self._r, self._w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._r = self._w = -1
