"""``shipper run``: tail -> parse -> bulk, with acknowledgements flowing back to the checkpoints.

Two threads. The *tailer thread* runs the follow loop and queues batches; the *shipping thread*
(the caller's) parses and encodes them, fills bulk requests (bounded by documents, bytes and time),
sends them, and acknowledges a tailer batch once every one of its documents is indexed, a
duplicate (409) or dead-lettered. The tailer commits a file position only over acknowledged
batches, so a crash at any moment loses nothing and the re-sent documents are refused as 409.

Shutdown (SIGTERM/SIGINT): stop reading, ship what was read (for at most ``shutdown_timeout``
seconds if Elasticsearch is unreachable), save the acknowledged positions, exit 0.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import ShipperConfig
from .parse import PARSERS, InputParsing, ParseContext, build_document, utc_now_iso
from .sink.bulk import BulkSender, SinkStats
from .sink.deadletter import DeadLetterFile
from .sink.encode import IndexNaming, Item, make_item
from .source import Batch, CheckpointStore, FileStatus, Tailer
from .source.follow import follow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What the metrics endpoint shows; replaced whole by the threads that own the data."""

    files: tuple[FileStatus, ...] = ()
    in_flight_records: int = 0
    queued_batches: int = 0


class Pipeline:
    def __init__(
        self,
        config: ShipperConfig,
        transport: Callable[[bytes], tuple[Any, int]],
        index_mode: str,
        shutdown_timeout: float = 10.0,
    ) -> None:
        es = config.output.elasticsearch
        self.config = config
        self.store = CheckpointStore.open(config.data_dir)
        rules = {inp.id: PARSERS[inp.parser].continues for inp in config.inputs}
        self.tailer = Tailer(config.inputs, self.store, config.watch, rules=rules)
        self.parsing = {inp.id: InputParsing.from_config(inp, config.hostname) for inp in config.inputs}
        self.naming = IndexNaming(index_mode, es.namespace)
        self.data_stream = index_mode == "data_stream"
        self.dead_letter = DeadLetterFile(os.path.join(config.data_dir, "dead-letter.ndjson"))
        self.stop_reading = threading.Event()
        self.stop_sending = threading.Event()
        self.shutdown_timeout = shutdown_timeout
        self.stats = SinkStats()
        self.sender = BulkSender(
            transport,
            self.dead_letter,
            self._resolved,
            self.stop_sending,
            es.retry.initial_backoff,
            es.retry.max_backoff,
            self.stats,
        )
        self.batch = es.batch
        self._queue: queue.Queue[Batch] = queue.Queue()
        self._remaining: dict[int, int] = {}  # tailer batch seq -> documents not yet resolved
        self.snapshot = Snapshot()
        self.encode_errors = 0

    # -- acknowledgements

    def _resolved(self, items: list[Item]) -> None:
        remaining = self._remaining
        for item in items:
            left = remaining[item.batch_seq] - 1
            if left:
                remaining[item.batch_seq] = left
            else:
                del remaining[item.batch_seq]
                self.tailer.ack(item.batch_seq)

    # -- encoding

    def encode(self, batch: Batch) -> list[Item]:
        src = batch.source
        ip = self.parsing[src.input_id]
        ctx = ParseContext(ip.times, utc_now_iso())
        naming, ds, namespace = self.naming, self.data_stream, self.naming.namespace
        items = []
        for record in batch.records:
            doc_id, dataset, doc = build_document(record, src, ip, ctx)
            index = naming.index(dataset, doc["@timestamp"])
            items.append(make_item(doc_id, index, doc, batch.seq, (dataset, namespace) if ds else None))
        self._remaining[batch.seq] = len(items)
        return items

    # -- threads

    def _tailer_thread(self) -> None:
        def queue_batches(batches: list[Batch]) -> None:
            for b in batches:
                self._queue.put(b)

        follow(self.tailer, self.config.watch, queue_batches, self.stop_reading)

    def _flush(self, buf: list[Item]) -> bool:
        """Send ``buf`` in requests of at most max_docs / max_bytes."""
        max_docs, max_bytes = self.batch.max_docs, self.batch.max_bytes
        start = 0
        while start < len(buf):
            end, size = start, 0
            while (
                end < len(buf) and end - start < max_docs and (size == 0 or size + buf[end].size <= max_bytes)
            ):
                size += buf[end].size
                end += 1
            if not self.sender.send(buf[start:end]):
                return False
            start = end
        return True

    def run(self) -> None:
        tailer_thread = threading.Thread(target=self._tailer_thread, name="tailer", daemon=True)
        tailer_thread.start()
        buf: list[Item] = []
        buf_bytes = 0
        deadline: float | None = None
        stop_deadline: float | None = None
        max_wait = self.batch.max_wait
        while True:
            now = time.monotonic()
            if self.stop_reading.is_set() and stop_deadline is None:
                stop_deadline = now + self.shutdown_timeout
            if stop_deadline is not None and now >= stop_deadline and not self.stop_sending.is_set():
                log.warning("shutdown timeout: leaving unsent records for the next start")
                self.stop_sending.set()
            wait = 0.25 if deadline is None else max(0.0, min(0.25, deadline - now))
            try:
                batch = self._queue.get(timeout=wait)
            except queue.Empty:
                batch = None
            if batch is not None:
                items = self.encode(batch)
                buf.extend(items)
                buf_bytes += sum(i.size for i in items)
                if deadline is None:
                    deadline = time.monotonic() + max_wait
            now = time.monotonic()
            draining = self.stop_reading.is_set() and not tailer_thread.is_alive() and self._queue.empty()
            if buf and (
                len(buf) >= self.batch.max_docs
                or buf_bytes >= self.batch.max_bytes
                or (deadline is not None and now >= deadline)
                or draining
            ):
                self._flush(buf)
                buf, buf_bytes, deadline = [], 0, None
                self._publish()
            if (draining and not buf) or self.stop_sending.is_set():
                break
            if batch is None:
                self._publish()
        tailer_thread.join(10)
        self.tailer.close()  # applies the last acknowledgements and saves the checkpoint
        self.dead_letter.close()

    def _publish(self) -> None:
        self.snapshot = Snapshot(
            files=tuple(self.tailer.files()) if not self.stop_reading.is_set() else self.snapshot.files,
            in_flight_records=self.tailer.tracker.in_flight_records,
            queued_batches=self._queue.qsize(),
        )

    def stop(self) -> None:
        self.stop_reading.set()
        self.tailer.wake.set()
