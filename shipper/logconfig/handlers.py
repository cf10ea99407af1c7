"""A ``WatchedFileHandler`` that writes each record with a single ``write(2)``.

Why: under the prefork pool several processes append to the same file. ``StreamHandler`` writes
through a buffered text stream and may split a long record into several writes, which can
interleave with another process's record and break a JSON line. One ``os.write`` on an
``O_APPEND`` descriptor lands the whole line at the end of the file. The watched-file part
(stat the path, reopen when the inode changed) is what lets logrotate's rename+create work with
no signal to the worker.
"""

from __future__ import annotations

import logging
import logging.handlers
import os


class JsonLinesFileHandler(logging.handlers.WatchedFileHandler):
    """Append one formatted record plus ``\\n`` per write; reopen the path after rotation."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = "utf-8", delay: bool = False):
        super().__init__(filename, mode=mode, encoding=encoding, delay=delay)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reopenIfNeeded()
            if self.stream is None:
                self.stream = self._open()
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            fd = self.stream.fileno()
            while data:
                written = os.write(fd, data)
                data = data[written:]
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
