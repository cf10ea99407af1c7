"""Shipping worker processes: parse, encode and send in parallel, report acknowledgements back.

Why processes: one Python core parses and ships about 80,000 Celery lines a second; the tailer
reads ten times faster than that. The main process keeps reading and the checkpoints (one owner);
each worker runs a :class:`~shipper.pipeline.Shipping` with its own Elasticsearch client.

Workers are started as fresh interpreters (``python -m shipper.workers``) that inherit nothing but
their two pipes: no metrics socket, no data-dir lock, no open log files, no threads' locks. They
ask Linux to kill them when the main process dies (``PR_SET_PDEATHSIG``, ``kill -9`` included),
so no worker outlives it; what a worker held was not acknowledged and is read again next time.

Flow control, so nothing can deadlock or grow without bound: a worker drains its task pipe on a
reader thread (the main process never blocks behind a worker stuck in a retry), the main process
only writes to a worker once it said it is ready, and gives each worker at most
``MAX_OUTSTANDING`` unacknowledged batches. Batches cross the pipe packed (lengths and offsets as
arrays, data as one blob), not pickled record by record.

A worker that dies is noticed at once (its result pipe ends) and replaced, and the main process,
which keeps every batch until it is acknowledged, sends the dead worker's batches again (a
document indexed just before the death comes back 409, counted as a duplicate). A record that
kills its worker is found without slowing the normal path: a worker says which batch it is
parsing; a batch that was being parsed at a death is sent again in *careful* mode, where the
worker also says which record it is at; a record being parsed at a second death is dead-lettered
by the main process (as its raw text, tagged ``worker_crash``) and the rest of its batch is sent
again. If workers keep dying anyway (more than ``MAX_DEATHS`` in ``DEATH_WINDOW`` seconds, or
three times in a row before they are ready), the shipper stops with one clear line and a
non-zero exit; the positions are safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any

import orjson

from .config import ShipperConfig
from .errors import ShipperError
from .sink.bulk import SinkStats
from .sink.deadletter import DeadLetterError, DeadLetterFile
from .source import Batch, Record, SourceRef, record_id

log = logging.getLogger(__name__)

MAX_OUTSTANDING = 2
#: More deaths than this within DEATH_WINDOW seconds: stop instead of restarting forever.
MAX_DEATHS = 10
DEATH_WINDOW = 60.0
#: Deaths in a row before a worker said it is ready (it cannot start: stop).
MAX_START_FAILURES = 3
_STOP = b"STOP"


class WorkersFailed(ShipperError):
    """Shipping workers keep dying; restarting them again would only loop."""


# ------------------------------------------------------------------------------- wire format


def pack(batch: Batch, careful: bool = False) -> bytes:
    return pack_records(batch.seq, batch.source, batch.records, careful)


def pack_records(seq: int, src: SourceRef, recs: Any, careful: bool = False) -> bytes:
    """A batch as bytes: header, record lengths, offsets, flags, then the record data."""
    header = orjson.dumps([seq, src.input_id, src.key, src.path, len(recs), int(careful)])
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
    seq, source, records, _careful = unpack_task(payload)
    return seq, source, records


def unpack_task(payload: bytes) -> tuple[int, SourceRef, list[Record], bool]:
    (hlen,) = struct.unpack_from("<I", payload)
    seq, input_id, key, path, n, *rest = orjson.loads(payload[4 : 4 + hlen])
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
    return seq, SourceRef(input_id, key, path), records, bool(rest and rest[0])


# ------------------------------------------------------------------------------- worker side


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the main process dies (kill -9 included); if it is
    already gone (it died while this one started), exit now."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the task pipe's EOF still stops the worker
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def worker_main(task_fd: int, result_fd: int, parent_pid: int) -> None:
    """Entry point of a worker process (``python -m shipper.workers TASK_FD RESULT_FD PPID``)."""
    _die_with_parent(parent_pid)
    import multiprocessing

    multiprocessing.current_process().name = "shipper-worker"  # processName in its log lines
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    # The main process's own config, through a private pipe: trusted.
    config, index_mode, shutdown_timeout, log_level = pickle.loads(tasks.recv_bytes())  # noqa: S301
    from .logconfig import install_json_logging

    install_json_logging(
        service_name="shipper",
        dataset="shipper.log",
        stream=sys.stderr,
        level=log_level,
        celery_context=False,
    )
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)  # as in the main process
    try:
        _work(config, index_mode, shutdown_timeout, tasks, results)
    except Exception:
        log.exception("shipping worker failed")
        sys.exit(1)


def _work(
    config: ShipperConfig, index_mode: str, shutdown_timeout: float, tasks: Connection, results: Connection
) -> None:
    from .pipeline import Shipping
    from .sink.bulk import EsTransport
    from .sink.client import make_client

    es = config.output.elasticsearch
    inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    acks: list[int] = []
    stop_sending = threading.Event()

    def reader() -> None:
        """Drain the task pipe. STOP (or the pipe's end) starts the give-up timer here, not when
        the main loop gets to it: that loop may be inside a send retrying an unreachable server."""
        try:
            while True:
                msg = tasks.recv_bytes()
                if msg == _STOP:
                    break
                inbox.put(msg)
        except (EOFError, OSError):
            pass
        # A second early, so the last report reaches the main process before its deadline.
        timer = threading.Timer(max(0.5, shutdown_timeout - 1.0), stop_sending.set)
        timer.daemon = True
        timer.start()
        inbox.put(_STOP)

    shipping = Shipping(
        config,
        EsTransport(make_client(es, warn=False), es.compression),
        index_mode,
        acks.append,
        stop_sending,
    )
    threading.Thread(target=reader, daemon=True).start()
    results.send_bytes(b'{"ready":true}')
    stopping = False
    last_report: dict[str, Any] = {}

    def report(final: bool = False, parsed: int | None = None) -> None:
        nonlocal last_report
        stats = shipping.stats.as_dict()
        if acks or stats != last_report or final or parsed is not None:
            msg: dict[str, Any] = {"acks": acks, "stats": stats, "final": final}
            if parsed is not None:
                msg["e"] = parsed
            results.send_bytes(orjson.dumps(msg))
            acks.clear()
            last_report = stats

    def mark(i: int) -> None:
        results.send_bytes(b'{"at":%d}' % i)

    try:
        while True:
            deadline = shipping.deadline
            timeout = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            try:
                msg = inbox.get(timeout=timeout)
            except queue.Empty:
                msg = None
            parsed = None
            if msg == _STOP:
                stopping = True
            elif msg is not None:
                seq, source, records, careful = unpack_task(msg)
                results.send_bytes(b'{"b":%d}' % seq)
                shipping.add(seq, source, records, mark if careful else None)
                parsed = seq
            if shipping.buf and (stopping or shipping.due(time.monotonic())):
                shipping.flush()
            report(parsed=parsed)
            if stopping and not shipping.buf:
                break
    finally:
        with contextlib.suppress(OSError):
            report(final=True)
        shipping.close()


# ------------------------------------------------------------------------------- main side


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    tasks: Connection
    results: Connection
    ready: bool = False
    final: bool = False
    #: Dispatched and not yet acknowledged: seq -> payload, in dispatch order.
    outstanding: dict[int, bytes] = field(default_factory=dict)
    #: The batch being parsed when last heard of, and the record (careful mode).
    parsing: int | None = None
    at: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)


class WorkerPool:
    def __init__(
        self,
        config: ShipperConfig,
        index_mode: str,
        n: int,
        shutdown_timeout: float,
        dead_letter: DeadLetterFile,
        log_level: str = "INFO",
    ) -> None:
        self.config, self.index_mode, self.n = config, index_mode, n
        self.shutdown_timeout = shutdown_timeout
        self.dead_letter = dead_letter
        self.log_level = log_level
        self.workers: list[_Worker] = []
        self.restarts = 0
        self._deaths: deque[float] = deque()
        self._start_failures = 0
        self._backlog: deque[tuple[int, bytes]] = deque()  # to (re)send once a worker has room
        self._retired = SinkStats()  # counters of dead workers: the totals never go back
        self._own = SinkStats()  # records the main process dead-lettered itself
        self._part_of: dict[int, int] = {}  # part seq (< 0) -> the tailer batch it belongs to
        self._parts_left: dict[int, int] = {}  # tailer batch seq -> parts not yet acknowledged
        self._next_part = 0
        self._poison: list[dict[str, Any]] = []  # dead-letter entries not yet written (disk full)
        self._poison_seqs: list[int] = []

    # -------------------------------------------------------------- processes

    def _spawn(self, index: int) -> _Worker:
        task_r, task_w = Pipe(duplex=False)
        res_r, res_w = Pipe(duplex=False)
        child_fds = (task_r.fileno(), res_w.fileno())
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shipper.workers", *map(str, child_fds), str(os.getpid())],
                pass_fds=child_fds,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            task_r.close()
            res_w.close()
        worker = _Worker(index, proc, task_w, res_r)
        # Small (a few KB): fits in the pipe buffer, never blocks on a worker still starting.
        task_w.send_bytes(pickle.dumps((self.config, self.index_mode, self.shutdown_timeout, self.log_level)))
        return worker

    def start(self) -> None:
        self.workers = [self._spawn(i) for i in range(self.n)]

    def close(self) -> None:
        """Kill whatever is still running (after drain(), or on an error): no worker outlives us."""
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(5)
            w.tasks.close()
            w.results.close()

    # -------------------------------------------------------------- dispatching

    def has_room(self) -> bool:
        return not self._backlog and any(
            w.ready and len(w.outstanding) < MAX_OUTSTANDING for w in self.workers
        )

    def dispatch(self, batch: Batch) -> None:
        self._backlog.append((batch.seq, pack(batch)))
        self._pump()

    def _pump(self) -> None:
        while self._backlog:
            ready = [w for w in self.workers if w.ready and not w.final]
            if not ready:
                return
            w = min(ready, key=lambda w: len(w.outstanding))
            if len(w.outstanding) >= MAX_OUTSTANDING and not self._careful(self._backlog[0][1]):
                return
            seq, payload = self._backlog.popleft()
            w.outstanding[seq] = payload
            try:
                w.tasks.send_bytes(payload)
            except OSError:  # it died: its result pipe ends next, and this batch goes again
                return

    @staticmethod
    def _careful(payload: bytes) -> bool:
        (hlen,) = struct.unpack_from("<I", payload)
        header = orjson.loads(payload[4 : 4 + hlen])
        return bool(len(header) > 5 and header[5])

    # -------------------------------------------------------------- results

    def collect(self, timeout: float) -> list[int]:
        """Acknowledged tailer batches; notices and replaces dead workers on the way."""
        acks: list[int] = []
        self._retry_poison(acks)
        conns = [w.results for w in self.workers if not w.results.closed]
        for ready in wait(conns, timeout=timeout):
            w = next(w for w in self.workers if w.results is ready)
            self._read(w, acks, restart=True)
        self._pump()
        return acks

    def _read(self, w: _Worker, acks: list[int], restart: bool) -> None:
        """Everything the worker has sent; at its end, the worker is dead: replace it."""
        conn = w.results
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                self._died(w, acks, restart)
                return
            msg = orjson.loads(data)
            if "at" in msg:
                w.at = msg["at"]
            elif "b" in msg:
                w.parsing, w.at = msg["b"], None
            elif "ready" in msg:
                w.ready = True
                self._start_failures = 0
            else:
                w.stats = msg["stats"]
                if "e" in msg:
                    w.parsing, w.at = None, None
                for seq in msg["acks"]:
                    w.outstanding.pop(seq, None)
                    self._acknowledged(seq, acks)
                if msg.get("final"):
                    w.final = True
            if not conn.poll():
                return

    def _acknowledged(self, seq: int, acks: list[int]) -> None:
        if seq >= 0:
            acks.append(seq)
            return
        whole = self._part_of.pop(seq)
        left = self._parts_left[whole] - 1
        if left:
            self._parts_left[whole] = left
        else:
            del self._parts_left[whole]
            acks.append(whole)

    def _died(self, w: _Worker, acks: list[int], restart: bool) -> None:
        try:
            code = w.proc.wait(5)
        except subprocess.TimeoutExpired:  # it closed its pipe but lives on: make sure
            w.proc.kill()
            code = w.proc.wait(5)
        w.results.close()
        w.tasks.close()
        # Their counters stay in the totals; their current problem (if any) died with them.
        retired = SinkStats.merged([self._retired.as_dict(), w.stats])
        retired.failing_since, retired.failing_refused, retired.failing_reason = 0.0, 0, ""
        retired.dead_letter_error = ""
        self._retired, w.stats = retired, {}
        if w.final and not w.outstanding:
            return  # a clean exit after STOP
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        if not restart:
            log.error(
                "shipping worker died while stopping; its batches stay unacknowledged",
                extra={"worker": w.index, "exit": how, "batches": len(w.outstanding)},
            )
            return
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - DEATH_WINDOW:
            self._deaths.popleft()
        if not w.ready:
            self._start_failures += 1
        log.error(
            "shipping worker died; restarting it and sending its batches again",
            extra={"worker": w.index, "exit": how, "batches": len(w.outstanding), "parsing": w.parsing},
        )
        if self._start_failures >= MAX_START_FAILURES:
            raise WorkersFailed(
                f"shipping workers cannot start ({how}, {self._start_failures} times in a row; see the "
                "log above); stopping, positions are safe"
            )
        if len(self._deaths) > MAX_DEATHS:
            raise WorkersFailed(
                f"shipping workers keep dying ({len(self._deaths)} deaths in {DEATH_WINDOW:.0f} s, last: "
                f"{how}); stopping, positions are safe"
            )
        resend: list[tuple[int, bytes]] = []
        for seq, payload in w.outstanding.items():
            if seq == w.parsing:
                resend.extend(self._suspect(seq, payload, w.at, acks))
            else:
                resend.append((seq, payload))
        self._backlog.extendleft(reversed(resend))  # before anything newer, in their order
        self.restarts += 1
        self.workers[w.index] = self._spawn(w.index)

    def _suspect(self, seq: int, payload: bytes, at: int | None, acks: list[int]) -> list[tuple[int, bytes]]:
        """The batch a worker was parsing when it died. The first time: again, carefully. In
        careful mode, the record it was at is the culprit: dead-letter it, send the rest."""
        seq, source, records, careful = unpack_task(payload)
        if not careful or at is None or not 0 <= at < len(records):
            log.warning(
                "sending the batch again, watching which record crashes a worker", extra={"batch": seq}
            )
            return [(seq, pack_records(seq, source, records, careful=True))]
        culprit = records[at]
        rest = records[:at] + records[at + 1 :]
        log.error(
            "a record crashed a shipping worker twice: dead-lettered as text",
            extra={"path": source.path, "offset": culprit.offset},
        )
        self._poison.append(
            {
                "_id": record_id(source.key, culprit.offset),
                "_index": None,
                "status": 0,
                "reason": "the record crashed a shipping worker twice",
                "error": None,
                "document": {
                    "message": culprit.data.decode("utf-8", "replace"),
                    "tags": ["unparsed", "worker_crash"],
                    "log": {"file": {"path": source.path}, "offset": culprit.offset},
                },
            }
        )
        whole = self._part_of.pop(seq, seq) if seq < 0 else seq
        if seq >= 0:
            self._parts_left[whole] = 0
        else:
            self._parts_left[whole] -= 1
        out = []
        if rest:
            self._next_part -= 1
            part = self._next_part
            self._part_of[part] = whole
            self._parts_left[whole] += 1
            out.append((part, pack_records(part, source, rest, careful=True)))
        # The culprit is resolved once written; its part counts as one until then.
        self._next_part -= 1
        self._part_of[self._next_part] = whole
        self._parts_left[whole] += 1
        self._poison_seqs.append(self._next_part)
        self._retry_poison(acks)
        return out

    def _retry_poison(self, acks: list[int]) -> None:
        if not self._poison:
            return
        try:
            self.dead_letter.write_entries(self._poison)
        except DeadLetterError as exc:
            log.error("cannot write the dead-letter file; retrying", extra={"reason": str(exc)})
            return
        self._own.dead_lettered += len(self._poison)
        self._own.flagged_worker_crash += len(self._poison)
        self._poison.clear()
        for part in self._poison_seqs:
            self._acknowledged(part, acks)
        self._poison_seqs.clear()

    def drain(self) -> list[int]:
        """Tell the workers to ship what they have and stop; collect their last acknowledgements.
        They give up retrying a second before ``shutdown_timeout``; whatever is still running at
        ``shutdown_timeout`` is killed, its batches unacknowledged (read again next time)."""
        for w in self.workers:
            if not w.ready:
                w.proc.kill()
            with contextlib.suppress(OSError):
                w.tasks.send_bytes(_STOP)
        acks: list[int] = []
        deadline = time.monotonic() + self.shutdown_timeout
        while time.monotonic() < deadline:
            conns = [w.results for w in self.workers if not w.results.closed]
            if not conns:
                break
            for ready in wait(conns, timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
                w = next(w for w in self.workers if w.results is ready)
                self._read(w, acks, restart=False)
        self._retry_poison(acks)
        self.close()
        return acks

    def stats(self) -> SinkStats:
        return SinkStats.merged(
            [self._retired.as_dict(), *(w.stats for w in self.workers), self._own.as_dict()]
        )


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
