"""The tailer's main loop for ``shipper tail``: poll, hand batches on, sleep until a file-system
event, an acknowledgement or a timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..config import WatchConfig
from .records import Batch
from .tailer import Tailer

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
    while not stop.is_set():
        tailer.wake.clear()  # before polling: an event during the poll is not lost
        batches = tailer.poll()
        if batches:
            on_batches(batches)
        if not batches or not tailer.more_to_read or tailer.backpressured:
            tailer.wake.wait(IDLE_WAIT)
