"""watchdog wake-ups for the tailer.

Events are hints, not truth: inotify queues overflow, renames into an unwatched directory look like
deletes, NFS sends nothing. So an event only makes the tailer read (on modify) or scan (on create,
move, delete) *sooner*; the periodic scan finds everything anyway. ``mode: polling`` swaps in
watchdog's polling observer for file systems without inotify.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, wake: threading.Event, rescan: threading.Event) -> None:
        self.wake = wake
        self.rescan = rescan

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("modified", "opened", "closed", "closed_no_write"):
            self.rescan.set()
        if event.event_type != "opened":
            self.wake.set()


class DirectoryWatcher:
    """Watches a changing set of directories (non-recursively) and sets the tailer's events."""

    def __init__(
        self,
        wake: threading.Event,
        rescan: threading.Event,
        polling: bool = False,
        poll_interval: float = 1.0,
    ) -> None:
        self._observer: Any = PollingObserver(timeout=poll_interval) if polling else Observer()
        self._handler = _Handler(wake, rescan)
        self._watches: dict[str, Any] = {}
        self._started = False

    def update(self, directories: set[str]) -> None:
        for d in directories - self._watches.keys():
            try:
                self._watches[d] = self._observer.schedule(self._handler, d, recursive=False)
            except OSError as exc:  # inotify watch limit, permission: the periodic scan still works
                log.warning("cannot watch %s (%s); relying on the periodic scan", d, exc)
                self._watches[d] = None
        for d in self._watches.keys() - directories:
            watch = self._watches.pop(d)
            if watch is not None:
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(watch)
        if not self._started:
            self._observer.daemon = True
            self._observer.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)
