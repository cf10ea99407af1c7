"""The tailer's main loop: poll, hand batches on, sleep until a watchdog event or a timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..config import WatchConfig
from .records import Batch
from .tailer import Tailer
from .watcher import DirectoryWatcher

#: Longest sleep when nothing happens: partial-line and multi-line timeouts are checked this often.
IDLE_WAIT = 0.25


def follow(
    tailer: Tailer,
    watch: WatchConfig,
    on_batches: Callable[[list[Batch]], None],
    stop: threading.Event,
) -> None:
    """Run until ``stop`` is set. The caller closes the tailer afterwards (``tailer.close()``), once
    the last acknowledgements are in, so the final checkpoint includes them."""
    watcher = DirectoryWatcher(
        tailer.wake, tailer.rescan, polling=watch.mode == "polling", poll_interval=watch.scan_interval
    )
    next_dirs = 0.0
    try:
        while not stop.is_set():
            tailer.wake.clear()  # before polling: an event during the poll is not lost
            batches = tailer.poll()
            if batches:
                on_batches(batches)
            now = time.monotonic()
            if now >= next_dirs:
                watcher.update(tailer.watched_dirs())
                next_dirs = now + watch.scan_interval
            if not batches or tailer.backpressured:
                tailer.wake.wait(IDLE_WAIT)
    finally:
        watcher.stop()
