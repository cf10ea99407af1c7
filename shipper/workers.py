"""Shipping worker processes: parse, encode and send in parallel, report acknowledgements back.

Why processes: one Python core parses and ships about 80,000 Celery lines a second; the tailer
reads ten times faster than that. The main process keeps reading and the checkpoints (one owner);
forked workers each run a :class:`~shipper.pipeline.Shipping` with their own Elasticsearch client.

Flow control, so nothing can deadlock or grow without bound: a worker drains its task pipe on a
reader thread (the main process never blocks behind a worker stuck in a retry), and the main
process gives each worker at most ``MAX_OUTSTANDING`` unacknowledged batches. Batches cross the
pipe packed (lengths and offsets as arrays, data as one blob), not pickled record by record.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import queue
import signal
import struct
import threading
import time
from array import array
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import orjson

from .config import ShipperConfig
from .sink.bulk import EsTransport, SinkStats
from .sink.client import make_client
from .source import Batch, Record, SourceRef

log = logging.getLogger(__name__)

MAX_OUTSTANDING = 2
_STOP = b"STOP"


def pack(batch: Batch) -> bytes:
    """A batch as bytes: header, record lengths, offsets, flags, then the record data."""
    recs = batch.records
    src = batch.source
    header = orjson.dumps([batch.seq, src.input_id, src.key, src.path, len(recs)])
    datas = [r.data for r in recs]
    return b"".join(
        [
            struct.pack("<I", len(header)),
            header,
            array("I", map(len, datas)).tobytes(),
            array("q", [r.offset for r in recs]).tobytes(),
            bytes([r.flags for r in recs]),
            *datas,
        ]
    )


def unpack(payload: bytes) -> tuple[int, SourceRef, list[Record]]:
    (hlen,) = struct.unpack_from("<I", payload)
    seq, input_id, key, path, n = orjson.loads(payload[4 : 4 + hlen])
    pos = 4 + hlen
    lens = array("I")
    lens.frombytes(payload[pos : pos + 4 * n])
    pos += 4 * n
    offsets = array("q")
    offsets.frombytes(payload[pos : pos + 8 * n])
    pos += 8 * n
    flags = payload[pos : pos + n]
    pos += n
    records = []
    for i in range(n):
        end = pos + lens[i]
        records.append(Record(offsets[i], 0, payload[pos:end], flags[i]))
        pos = end
    return seq, SourceRef(input_id, key, path), records


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the main process dies (kill -9 included): whatever the
    worker holds is unacknowledged and will be read again by the next shipper."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the task pipe's EOF still stops the worker
        pass


def worker_main(
    config: ShipperConfig, index_mode: str, tasks: Connection, results: Connection, shutdown_timeout: float
) -> None:
    """Entry point of a worker process."""
    from .pipeline import Shipping

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    es = config.output.elasticsearch
    inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def reader() -> None:
        try:
            while True:
                inbox.put(tasks.recv_bytes())
        except (EOFError, OSError):
            inbox.put(_STOP)

    threading.Thread(target=reader, daemon=True).start()
    acks: list[int] = []
    stop_sending = threading.Event()
    shipping = Shipping(
        config, EsTransport(make_client(es), es.compression), index_mode, acks.append, stop_sending
    )
    stopping = False
    last_report: dict[str, Any] = {}

    def report(final: bool = False) -> None:
        nonlocal last_report
        stats = dict(shipping.stats.__dict__)
        if acks or stats != last_report or final:
            results.send_bytes(orjson.dumps({"acks": acks, "stats": stats, "final": final}))
            acks.clear()
            last_report = stats

    try:
        while True:
            deadline = shipping.deadline
            timeout = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            try:
                msg = inbox.get(timeout=timeout)
            except queue.Empty:
                msg = None
            if msg == _STOP:
                stopping = True
                threading.Timer(shutdown_timeout, stop_sending.set).start()
            elif msg is not None:
                seq, source, records = unpack(msg)
                shipping.add(seq, source, records)
            if shipping.buf and (stopping or shipping.due(time.monotonic())):
                shipping.flush()
            report()
            if stopping and not shipping.buf:
                break
    finally:
        report(final=True)
        shipping.close()


class WorkerPool:
    def __init__(self, config: ShipperConfig, index_mode: str, n: int, shutdown_timeout: float) -> None:
        self.config, self.index_mode, self.n = config, index_mode, n
        self.shutdown_timeout = shutdown_timeout
        self.procs: list[Any] = []
        self.task_conns: list[Connection] = []
        self.result_conns: list[Connection] = []
        self.outstanding: list[int] = []
        self.worker_stats: list[dict[str, Any]] = []
        self._owner: dict[int, int] = {}  # batch seq -> worker index

    def start(self) -> None:
        ctx = mp.get_context("fork")
        for _ in range(self.n):
            task_r, task_w = ctx.Pipe(duplex=False)
            res_r, res_w = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=worker_main,
                name="shipper-worker",
                daemon=True,
                args=(self.config, self.index_mode, task_r, res_w, self.shutdown_timeout),
            )
            proc.start()
            task_r.close()
            res_w.close()
            self.procs.append(proc)
            self.task_conns.append(task_w)
            self.result_conns.append(res_r)
            self.outstanding.append(0)
            self.worker_stats.append({})

    def has_room(self) -> bool:
        return min(self.outstanding) < MAX_OUTSTANDING

    def dispatch(self, batch: Batch) -> None:
        w = min(range(self.n), key=self.outstanding.__getitem__)
        self.task_conns[w].send_bytes(pack(batch))
        self.outstanding[w] += 1
        self._owner[batch.seq] = w

    def _handle(self, conn: Connection) -> tuple[list[int], bool]:
        w = self.result_conns.index(conn)
        try:
            msg = orjson.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return [], True
        self.worker_stats[w] = msg["stats"]
        for seq in msg["acks"]:
            owner = self._owner.pop(seq, w)
            self.outstanding[owner] -= 1
        return list(msg["acks"]), bool(msg.get("final"))

    def collect(self, timeout: float) -> list[int]:
        acks: list[int] = []
        for ready in wait(self.result_conns, timeout=timeout):
            got, _final = self._handle(cast(Connection, ready))
            acks.extend(got)
        return acks

    def drain(self) -> list[int]:
        """Tell the workers to ship what they have and stop; collect their last acknowledgements."""
        for conn in self.task_conns:
            with contextlib.suppress(OSError):
                conn.send_bytes(_STOP)
        acks: list[int] = []
        open_conns = list(self.result_conns)
        deadline = time.monotonic() + self.shutdown_timeout + 15
        while open_conns and time.monotonic() < deadline:
            for ready in wait(open_conns, timeout=0.5):
                conn = cast(Connection, ready)
                got, final = self._handle(conn)
                acks.extend(got)
                if final:
                    open_conns.remove(conn)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        return acks

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.procs)

    def stats(self) -> SinkStats:
        total = SinkStats()
        for s in self.worker_stats:
            for key, value in s.items():
                if key == "last_success":
                    total.last_success = max(total.last_success, value)
                else:
                    setattr(total, key, getattr(total, key) + value)
        return total
