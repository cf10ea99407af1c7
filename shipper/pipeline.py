"""``shipper run``: tail -> parse -> bulk, with acknowledgements flowing back to the checkpoints.

The tailer hands out batches; :class:`Shipping` parses and encodes them, fills bulk requests
(bounded by documents, bytes and time), sends them, and acknowledges a tailer batch once every
one of its documents is indexed, a duplicate (409) or dead-lettered. The tailer commits a file
position only over acknowledged batches, so a crash at any moment loses nothing and the re-sent
documents are refused as 409.

``workers: 0`` runs all of it in one thread of one process (reading a line costs a tenth of
parsing and shipping it; a reader thread would only fight the parser for the GIL). With
``workers: N`` the main process reads and keeps the checkpoints while N forked processes parse,
encode and send (workers.py).

Shutdown (SIGTERM/SIGINT): stop reading, ship what was read (for at most ``shutdown_timeout``
seconds if Elasticsearch is unreachable), save the acknowledged positions, exit 0.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .config import BatchConfig, ShipperConfig
from .health import HealthMonitor
from .parse import PARSERS, InputParsing, ParseContext, build_document, salvage_document, utc_now_iso
from .parse.document import describe_exception
from .sink.bulk import BulkSender, SinkStats
from .sink.deadletter import DeadLetterFile
from .sink.encode import DocumentTooDeep, IndexNaming, Item, make_item, record_item
from .source import CheckpointStore, FileStatus, Record, SourceRef, Tailer
from .source.follow import IDLE_WAIT
from .throttle import Throttled

if TYPE_CHECKING:
    from .workers import WorkerPool

log = logging.getLogger(__name__)

Transport = Callable[[bytes], tuple[Any, int]]


@dataclass(frozen=True)
class Snapshot:
    """What the metrics endpoint shows; replaced whole by the loop that owns the data."""

    files: tuple[FileStatus, ...] = ()
    in_flight_records: int = 0


def dead_letter_path(config: ShipperConfig) -> str:
    return os.path.join(config.data_dir, "dead-letter.ndjson")


class Shipping:
    """Encode batches, fill and send bulk requests, report fully resolved batches to ``on_ack``."""

    def __init__(
        self,
        config: ShipperConfig,
        transport: Transport,
        index_mode: str,
        on_ack: Callable[[int], None],
        stop_sending: threading.Event,
        dead_letter: DeadLetterFile | None = None,
        while_waiting: Callable[[], None] | None = None,
    ) -> None:
        es = config.output.elasticsearch
        self.parsing = {inp.id: InputParsing.from_config(inp, config.hostname) for inp in config.inputs}
        self.naming = IndexNaming(index_mode, es.namespace)
        self.data_stream = index_mode == "data_stream"
        self.dead_letter = dead_letter or DeadLetterFile(dead_letter_path(config))
        self.stats = SinkStats()
        self.on_ack = on_ack
        self.sender = BulkSender(
            transport,
            self.dead_letter,
            self._resolved,
            stop_sending,
            es.retry.initial_backoff,
            es.retry.max_backoff,
            self.stats,
            while_waiting,
        )
        self.batch: BatchConfig = es.batch
        self._remaining: dict[int, int] = {}  # tailer batch seq -> documents not yet resolved
        self.buf: list[Item] = []
        self.buf_bytes = 0
        self.deadline: float | None = None
        self._salvage_log = Throttled(log)

    def _resolved(self, items: list[Item]) -> None:
        remaining = self._remaining
        for seq, n in Counter(map(itemgetter(1), items)).items():  # counted in C, not per item
            left = remaining[seq] - n
            if left:
                remaining[seq] = left
            else:
                del remaining[seq]
                self.on_ack(seq)

    def add(
        self,
        seq: int,
        source: SourceRef,
        records: Sequence[Record],
        mark: Callable[[int], None] | None = None,
    ) -> None:
        self._remaining[seq] = len(records)
        items = self.items(seq, source, records, mark)
        self.buf.extend(items)
        self.buf_bytes += sum(len(i.body) for i in items)
        if self.deadline is None:
            self.deadline = time.monotonic() + self.batch.max_wait

    def items(
        self,
        seq: int,
        source: SourceRef,
        records: Sequence[Record],
        mark: Callable[[int], None] | None = None,
    ) -> list[Item]:
        """One encoded item per record, whatever the record holds. A document nested deeper than
        the encoder goes is replaced by the record's text, tagged ``json_too_deep``; a record whose
        path raises anyway (a bug) is shipped as its text, tagged ``record_error``; both counted.
        ``mark(i)`` is called before record ``i`` when a worker is looking for the record that
        crashed it (see workers.py); the normal path does not pay for it."""
        ip = self.parsing[source.input_id]
        ctx = ParseContext(ip.times, utc_now_iso())
        naming, namespace, problems = self.naming, self.naming.namespace, ctx.problems
        ds = self.data_stream
        items: list[Item] = []
        append = items.append
        if mark is None:
            for record in records:
                try:
                    doc_id, dataset, doc = build_document(record, source, ip, ctx)
                    index = naming.index(dataset, doc["@timestamp"])
                    dsn = (dataset, namespace) if ds else None
                    append(record_item(naming, doc_id, index, doc, seq, dsn, problems))
                except Exception as exc:  # never one record's fault to stop the others
                    append(self._as_text(seq, source, record, ip, ctx, exc))
        else:
            for i, record in enumerate(records):
                mark(i)
                try:
                    doc_id, dataset, doc = build_document(record, source, ip, ctx)
                    index = naming.index(dataset, doc["@timestamp"])
                    dsn = (dataset, namespace) if ds else None
                    append(record_item(naming, doc_id, index, doc, seq, dsn, problems))
                except Exception as exc:
                    append(self._as_text(seq, source, record, ip, ctx, exc))
            mark(len(records))  # past the last record: a death from now on is not theirs
        if problems:
            self.stats.add_problems(problems)
        return items

    def _as_text(
        self,
        seq: int,
        source: SourceRef,
        record: Record,
        ip: InputParsing,
        ctx: ParseContext,
        exc: Exception,
    ) -> Item:
        """The record's text instead of its document: ``json_too_deep`` when the document nests
        deeper than the encoder goes, ``record_error`` (logged: a bug) for anything else."""
        if isinstance(exc, DocumentTooDeep):
            reason = "json_too_deep"
        else:
            reason = "record_error"
            self._salvage_log.problem(
                logging.ERROR,
                "a record could not be encoded (a bug); shipped as its text, tagged record_error",
                path=source.path,
                offset=record.offset,
                reason=describe_exception(exc),
            )
        doc_id, dataset, doc = salvage_document(record, source, ip, ctx, reason)
        index = self.naming.index(dataset, ctx.ingest_time)
        ds = (dataset, self.naming.namespace) if self.data_stream else None
        return make_item(self.naming, doc_id, index, doc, seq, ds, ctx.problems)

    def due(self, now: float) -> bool:
        return bool(self.buf) and (
            len(self.buf) >= self.batch.max_docs
            or self.buf_bytes >= self.batch.max_bytes
            or (self.deadline is not None and now >= self.deadline)
        )

    def flush(self) -> bool:
        """Send the buffer in requests of at most max_docs and max_bytes (sizes summed in C)."""
        buf, self.buf, self.buf_bytes, self.deadline = self.buf, [], 0, None
        max_docs, max_bytes = self.batch.max_docs, self.batch.max_bytes
        sizes = [len(i.body) for i in buf]
        start = 0
        while start < len(buf):
            end = min(len(buf), start + max_docs)
            while end - start > 1 and sum(sizes[start:end]) > max_bytes:
                end = start + max(1, (end - start) // 2)
            if not self.sender.send(buf[start:end]):
                return False
            start = end
        return True

    def close(self) -> None:
        self.dead_letter.close()


class Pipeline:
    """The whole run loop; with ``workers > 0`` the shipping happens in worker processes."""

    def __init__(
        self,
        config: ShipperConfig,
        transport_factory: Callable[[], Transport],
        index_mode: str,
        shutdown_timeout: float = 10.0,
        monitor: HealthMonitor | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.config = config
        # Opened first: an unsafe dead-letter file (a symlink...) stops the start with one line.
        self.dead_letter = DeadLetterFile(dead_letter_path(config))
        self.store = CheckpointStore.open(config.data_dir)
        rules = {inp.id: PARSERS[inp.parser].continues for inp in config.inputs}
        self.tailer = Tailer(config.inputs, self.store, config.watch, rules=rules, host=config.hostname)
        self.stop_reading = threading.Event()
        self.stop_sending = threading.Event()
        self.shutdown_timeout = shutdown_timeout
        self.snapshot = Snapshot()
        self.workers = config.output.elasticsearch.workers
        self.index_mode = index_mode
        self.transport_factory = transport_factory
        self.monitor = monitor
        self.log_level = log_level
        self.shipping: Shipping | None = None
        self.pool: WorkerPool | None = None
        self._timers = [0.0]  # when the snapshot for metrics and health is next published

    @property
    def stats(self) -> SinkStats:
        if self.pool is not None:
            return self.pool.stats()
        return self.shipping.stats if self.shipping is not None else SinkStats()

    @property
    def worker_restarts(self) -> int:
        return self.pool.restarts if self.pool is not None else 0

    def run(self) -> None:
        try:
            if self.workers:
                from .workers import WorkerPool

                self.pool = WorkerPool(
                    self.config,
                    self.index_mode,
                    self.workers,
                    self.shutdown_timeout,
                    self.dead_letter,
                    self.log_level,
                )
                self.pool.start()
                self._loop_with_workers(self.pool)
            else:
                self.shipping = Shipping(
                    self.config,
                    self.transport_factory(),
                    self.index_mode,
                    self.tailer.ack,
                    self.stop_sending,
                    self.dead_letter,
                    # An outage must not blind the tailer: files created and rotated away
                    # while the retries wait are opened, and read once the sink is back.
                    while_waiting=self._keep_watch,
                )
                self._loop(self.shipping)
        finally:
            if self.pool is not None:
                self.pool.close()  # no worker outlives the main process, whatever happened
            self.tailer.close()  # applies the last acknowledgements and saves the checkpoint
            self.dead_letter.close()

    def _keep_watch(self) -> None:
        if not self.stop_reading.is_set():
            self.tailer.keep_watch()
        self._housekeeping(time.monotonic(), self._timers)

    def _housekeeping(self, now: float, timers: list[float]) -> None:
        if now >= timers[0]:
            self._publish()
            timers[0] = now + 1.0

    def _loop(self, shipping: Shipping) -> None:
        timers = self._timers
        while True:
            reading = not self.stop_reading.is_set()
            self.tailer.wake.clear()
            batches = self.tailer.poll() if reading else []
            for batch in batches:
                shipping.add(batch.seq, batch.source, batch.records)
            now = time.monotonic()
            self._housekeeping(now, timers)  # before a send that may block in an outage
            if shipping.buf and (not reading or shipping.due(now)):
                shipping.flush()
            if not reading or self.stop_sending.is_set():
                return
            if not batches or not self.tailer.more_to_read or self.tailer.backpressured:
                deadline = shipping.deadline
                timeout = IDLE_WAIT if deadline is None else max(0.0, min(IDLE_WAIT, deadline - now))
                self.tailer.wake.wait(timeout)

    def _loop_with_workers(self, pool: WorkerPool) -> None:
        timers = self._timers
        while True:
            for seq in pool.collect(timeout=0):
                self.tailer.ack(seq)
            if self.stop_reading.is_set():
                for seq in pool.drain():
                    self.tailer.ack(seq)
                return
            self.tailer.wake.clear()
            if pool.has_room():
                batches = self.tailer.poll()
            else:
                batches = []
                self._keep_watch()
            for batch in batches:
                pool.dispatch(batch)
            self._housekeeping(time.monotonic(), timers)
            if not batches or not self.tailer.more_to_read or self.tailer.backpressured:
                for seq in pool.collect(timeout=IDLE_WAIT / 5):
                    self.tailer.ack(seq)

    def _publish(self) -> None:
        self.snapshot = Snapshot(
            files=tuple(self.tailer.files()),
            in_flight_records=self.tailer.tracker.in_flight_records,
        )
        if self.monitor is not None:
            self.monitor.observe(self.snapshot.in_flight_records, self.stats)

    def stop(self) -> None:
        """Stop reading and ship what was read; give up retrying after ``shutdown_timeout``."""
        self.stop_reading.set()
        self.tailer.wake.set()
        timer = threading.Timer(self.shutdown_timeout, self.stop_sending.set)
        timer.daemon = True
        timer.start()
