"""The file server: find files, follow them through rotation, hand out batches, commit on ack.

Modelled on Vector's file source (fingerprinter, checkpointer, file server, acknowledgements) and
Filebeat's filestream (prospector, harvester, cursor written only after the output acked):

- A periodic *scan* of the inputs' globs is the source of truth; watchdog events only make the
  next read or scan happen sooner (events can be lost or coalesced).
- Files are identified by content (fingerprint.py), looked up through their inode while open.
- A file renamed away (``create`` rotation) is read to its end; a truncated file (``copytruncate``)
  has its unread bytes finished from the copy, plain or ``.gz``; after a restart an unfinished file
  that was rotated and compressed meanwhile is finished from its ``.gz``. Nothing is abandoned on a
  timer while it has unread bytes.
- Checkpoints only ever advance over acknowledged batches (acks.py, checkpoint.py).
- Reading pauses while ``max_pending_records`` are unacknowledged: memory stays bounded when the
  sink is slow or down.

All state is owned by the thread that calls :meth:`Tailer.poll`; :meth:`Tailer.ack` may be called
from any thread.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from ..config import InputConfig, WatchConfig
from .acks import AckTracker
from .checkpoint import CheckpointStore, FileState
from .fingerprint import Fingerprint, digest_of, fingerprint_head, matches, read_head_path
from .harvester import Harvester
from .multiline import ContinuationRule
from .records import NO_NEWLINE, TRUNCATED, Batch, Record, SourceRef

log = logging.getLogger(__name__)

READ_BUDGET = 1024 * 1024  # bytes read from one file per turn, so one busy file cannot starve others
MTIME_SLACK = 5.0  # seconds
DELETED_GRACE = 2.0  # seconds a deleted file stays open after its last growth
TAIL_LEN = 64  # bytes before a checkpoint offset kept as a digest to detect in-place rewrites


def _regular_file(path: str) -> os.stat_result | None:
    """``os.stat`` of a regular file; None for anything else, or if it is gone already."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


@dataclass
class TailerStats:
    """Counters for metrics; they only grow."""

    records: int = 0
    bytes: int = 0
    truncated_lines: int = 0
    partial_lines: int = 0
    files_opened: int = 0
    files_finished: int = 0
    rotations: int = 0
    truncations: int = 0
    resumed_from_copy: int = 0
    #: Rotated files read from the start because their content had never been seen.
    adopted_rotated: int = 0
    #: Files whose unread bytes were gone (deleted with rotation while the shipper was down).
    files_lost: int = 0


@dataclass(frozen=True)
class FileStatus:
    key: str
    input_id: str
    path: str
    committed: int
    read: int
    size: int | None
    live: bool


class Tailer:
    def __init__(
        self,
        inputs: Iterable[InputConfig],
        store: CheckpointStore,
        watch: WatchConfig,
        rules: Mapping[str, ContinuationRule | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inputs = tuple(inputs)
        self.store = store
        self.watch = watch
        self.rules = dict(rules or {})
        self.clock = clock
        self.stats = TailerStats()
        self.tracker = AckTracker()
        self._harvesters: dict[str, Harvester] = {}
        self._by_inode: dict[tuple[int, int], Harvester] = {}
        #: Files at glob paths that are copies of content being read elsewhere: not read twice.
        self._aliases: dict[tuple[int, int], str] = {}
        #: Non-empty files without a complete line yet (cannot be identified): first seen at.
        self._waiting: dict[tuple[int, int], float] = {}
        #: Rotated siblings already looked at, by (dev, ino, size, mtime): heads are read once.
        self._checked_siblings: set[tuple[int, int, int, int]] = set()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._seq = 0
        self._next_scan = 0.0
        self._next_save = 0.0
        self._first_scan = True
        self.wake = threading.Event()
        self.rescan = threading.Event()

    # ------------------------------------------------------------------ public API

    def ack(self, seq: int) -> None:
        """The sink resolved every record of batch ``seq`` (indexed or dead-lettered)."""
        self._acks.put(seq)
        self.wake.set()

    def poll(self) -> list[Batch]:
        """One turn: apply acks, scan if due, read what is there, expire timeouts, save if due."""
        now = self.clock()
        self._apply_acks()
        if now >= self._next_scan or self.rescan.is_set():
            self.rescan.clear()
            self.scan(now)
            self._next_scan = now + self.watch.scan_interval
        batches: list[Batch] = []
        for h in list(self._harvesters.values()):
            if h.finished:
                continue
            capacity = self.watch.max_pending_records - self.tracker.in_flight_records
            if capacity > 0 and self._has_news(h):
                self._emit(h, h.read(READ_BUDGET, now, capacity), batches)
            if h.eof:
                self._emit(h, h.expire(now, force=h.static or (not h.live and h.src is None)), batches)
                self._maybe_finish(h, now)
        self._retire_finished()
        if now >= self._next_save:
            self.save()
            self._next_save = now + self.watch.checkpoint_interval
        return batches

    @property
    def backpressured(self) -> bool:
        return self.tracker.in_flight_records >= self.watch.max_pending_records

    def save(self) -> None:
        """Write acknowledged positions to the checkpoint file (no-op when nothing changed)."""
        self._apply_acks()
        self.store.save()

    def close(self) -> None:
        self.save()
        for h in self._harvesters.values():
            h.close()

    def watched_dirs(self) -> set[str]:
        dirs: set[str] = set()
        for inp in self.inputs:
            for pattern in inp.paths:
                static = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
                base = os.path.dirname(static) if not static.endswith("/") else static.rstrip("/")
                dirs.add(base or ".")
        for h in self._harvesters.values():
            dirs.add(os.path.dirname(h.path) or ".")
        return {d for d in dirs if os.path.isdir(d)}

    def files(self) -> list[FileStatus]:
        """Per-file positions; safe to call from another thread (for metrics): it works on a copy
        of the harvester list and tolerates files closed meanwhile."""
        out = []
        for h in list(self._harvesters.values()):
            size = None
            fd = h.fileno()
            if fd is not None:
                try:
                    size = os.fstat(fd).st_size
                except OSError:
                    size = None
            committed = self.tracker.committed(h.key)
            out.append(
                FileStatus(
                    h.key, h.input.id, h.path, committed or 0, h.position, size, h.live and not h.finished
                )
            )
        return out

    # ------------------------------------------------------------------ scanning

    def _glob(self, inp: InputConfig) -> list[str]:
        found: list[str] = []
        for pattern in inp.paths:
            for path in sorted(glob.glob(os.path.expanduser(pattern))):
                name = os.path.basename(path)
                if any(fnmatch.fnmatch(name, ex) or fnmatch.fnmatch(path, ex) for ex in inp.exclude):
                    continue
                found.append(path)
        return found

    def scan(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        seen: set[tuple[int, int]] = set()
        for inp in self.inputs:
            for path in self._glob(inp):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue
                seen.add(ident)
                h = self._by_inode.get(ident)
                if h is not None:
                    if h.path != path:
                        h.path = path
                    h.live = True
                    if self._truncated(h, st):
                        self._on_truncated(h)
                        self._discover(inp, path, st, now)
                    continue
                alias = self._aliases.get(ident)
                if alias is not None and alias in self._harvesters and not self._harvesters[alias].finished:
                    continue
                self._aliases.pop(ident, None)
                self._discover(inp, path, st, now)
        for ident in list(self._waiting):
            if ident not in seen:
                del self._waiting[ident]
        for ident in list(self._aliases):
            if ident not in seen:
                del self._aliases[ident]
        for h in self._harvesters.values():
            fd = h.fileno()
            if (h.dev, h.ino) in seen or h.finished or fd is None:
                continue
            if h.live:
                h.live = False
                self.stats.rotations += 1
                log.info("file rotated away or deleted, reading it to its end", extra={"path": h.path})
            try:
                # A rotated file can still be truncated (copytruncate on a renamed file is rare,
                # but a deleted-and-reused inode is not): the same check as for live files.
                st = os.fstat(fd)
            except OSError:
                continue
            h.deleted = st.st_nlink == 0
        if self._first_scan:
            self._first_scan = False
            self._recover_unfinished(now)
        self._adopt_rotated_siblings(seen, now)
        self._forget_old_entries()

    def _has_news(self, h: Harvester) -> bool:
        """Is there something to read? For a file idle at its end, check before reading that it
        was not truncated and refilled since: reading on from the old offset would ship the middle
        of someone else's lines."""
        fd = h.fileno()
        if not h.eof or fd is None:
            return True
        try:
            st = os.fstat(fd)
        except OSError:
            return True
        if st.st_size == h.position:
            return False
        if self._truncated(h, st):
            self._on_truncated(h)
            self.rescan.set()  # the truncated file is new content: discover it on the next turn
            return False
        return True

    def _truncated(self, h: Harvester, st: os.stat_result) -> bool:
        fd = h.fileno()
        if fd is None:
            return False
        if st.st_size < h.position:
            return True
        if st.st_size == 0:
            return False
        try:
            head = os.pread(fd, h.fp.head_len, 0)
        except OSError:
            return False
        # Truncated and refilled past our position between two scans: the head tells.
        return not matches(head, h.fp)

    def _discover(self, inp: InputConfig, path: str, st: os.stat_result, now: float) -> None:
        ident = (st.st_dev, st.st_ino)
        if st.st_size == 0:
            return
        head = read_head_path(path)
        known = self._identify(head)
        if known is not None:
            fp, key = known
        else:
            new_fp = fingerprint_head(head)
            if new_fp is None:
                first = self._waiting.setdefault(ident, now)
                if now - first < inp.partial_line_timeout:
                    return
                new_fp = fingerprint_head(head, allow_partial=True)
                if new_fp is None:
                    return
            fp, key = new_fp, new_fp.key
        self._waiting.pop(ident, None)
        if key in self._harvesters:
            # Same content as a file being read: a copy (copytruncate) or a hard copy. Reading it
            # too would only produce duplicates; it is remembered in case the original is truncated.
            self._aliases[ident] = key
            return
        offset = 0
        state = self.store.get(key)
        if state is not None:
            offset = state.offset
            if offset > st.st_size or not self._tail_matches(path, state):
                # Same head, different body: rewritten in place. New identity, from the start.
                log.warning("file rewritten in place, reading it again from the start", extra={"path": path})
                key = digest_of(head[: fp.head_len] + f"\0rewritten@{time.time_ns()}".encode())
                offset = 0
        elif inp.start_at == "end" and self._first_scan:
            offset = self._last_line_end(path, st.st_size)
        self._start(inp, fp, key, path, st, offset, now)

    def _identify(self, head: bytes) -> tuple[Fingerprint, str] | None:
        """The known identity (being read, or in the checkpoint store) whose head ``head`` starts with.

        A file's head is fixed when it is first seen; a small file that grew since must be matched
        with the head length stored then, not with a fingerprint of its current first kilobyte.
        """
        index: dict[int, dict[str, str]] = {}
        for state in sorted(self.store, key=lambda s: (not s.finished, s.updated)):
            index.setdefault(state.head_len, {})[state.head] = state.key
        for h in self._harvesters.values():
            if not h.finished:
                index.setdefault(h.fp.head_len, {})[h.fp.digest] = h.key
        for head_len in sorted(index, reverse=True):
            if len(head) >= head_len:
                digest = digest_of(head[:head_len])
                key = index[head_len].get(digest)
                if key is not None:
                    return Fingerprint(head_len, digest), key
        return None

    def _start(
        self,
        inp: InputConfig,
        fp: Fingerprint,
        key: str,
        path: str,
        st: os.stat_result,
        offset: int,
        now: float,
        live: bool = True,
    ) -> Harvester | None:
        try:
            h = Harvester.open(inp, fp, key, path, st, offset, self.rules.get(inp.id), now)
        except (OSError, EOFError) as exc:
            log.warning("cannot open %s: %s", path, exc)
            return None
        h.live = live and not h.static
        self._harvesters[key] = h
        if h.is_plain:
            self._by_inode[(h.dev, h.ino)] = h
        self.tracker.start(key, offset)
        self.stats.files_opened += 1
        self._put_state(h, offset)
        # The identity must be durable before any id derived from it leaves: after a crash, a small
        # file that grew would otherwise get a longer head, a new key, and its lines new ids.
        self.store.save()
        return h

    @staticmethod
    def _tail_matches(path: str, state: FileState) -> bool:
        if state.tail is None or state.offset == 0 or path.endswith(".gz"):
            return True
        n = min(TAIL_LEN, state.offset)
        try:
            with open(path, "rb") as f:
                f.seek(state.offset - n)
                return digest_of(f.read(n)) == state.tail
        except OSError:
            return False

    @staticmethod
    def _last_line_end(path: str, size: int) -> int:
        window = min(size, 65536)
        with open(path, "rb") as f:
            f.seek(size - window)
            data = f.read(window)
        nl = data.rfind(b"\n")
        return size - window + nl + 1 if nl >= 0 else size - window

    # ------------------------------------------------------------------ rotation

    def _on_truncated(self, h: Harvester) -> None:
        """``h``'s file shrank or was rewritten: finish its content from a copy if there is one."""
        self.stats.truncations += 1
        self._by_inode.pop((h.dev, h.ino), None)
        copy = self._find_copy(h.fp, h.path, h.position, exclude=(h.dev, h.ino))
        if copy is not None:
            path, st = copy
            log.info("file truncated; finishing its unread part from the copy", extra={"path": path})
            try:
                h.switch_to(path, st)
                self.stats.resumed_from_copy += 1
                if h.is_plain:
                    self._by_inode[(h.dev, h.ino)] = h
                return
            except (OSError, EOFError) as exc:
                log.warning("cannot read copy %s: %s", path, exc)
        log.info("file truncated; its unread bytes are gone", extra={"path": h.path})
        h.close()
        h.static, h.live, h.eof = True, False, True

    @staticmethod
    def _siblings(path: str) -> list[tuple[str, os.stat_result]]:
        """``path`` itself and the files next to it named like its rotations: ``app.log.1``,
        ``app.log-20261124``, ``app-20261124.log``, ``app.log.2.gz``."""
        directory, base = os.path.split(path)
        stem = base.rsplit(".", 1)[0] if "." in base else base
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return []
        out = []
        for name in names:
            if not name.startswith(stem):
                continue
            full = os.path.join(directory, name)
            st = _regular_file(full)
            if st is not None:
                out.append((full, st))
        return out

    def _rotated_files(self, inp: InputConfig) -> list[tuple[str, os.stat_result]]:
        """Files named like rotations of the input's files (``PATTERN.*``, ``PATTERN-*``), whose
        base name (the part the pattern matches) is not excluded."""
        found = []
        for pattern in inp.paths:
            pattern = os.path.expanduser(pattern)
            base_pattern = os.path.basename(pattern)
            for suffix in (".*", "-*"):
                for full in glob.glob(pattern + suffix):
                    name = os.path.basename(full)
                    base = next(
                        (
                            name[:i]
                            for i in range(len(name), 0, -1)
                            if name[i : i + 1] in (".", "-") and fnmatch.fnmatch(name[:i], base_pattern)
                        ),
                        None,
                    )
                    if base is None or any(fnmatch.fnmatch(base, ex) for ex in inp.exclude):
                        continue
                    st = _regular_file(full)
                    if st is not None:
                        found.append((full, st))
        return found

    def _adopt_rotated_siblings(self, seen: set[tuple[int, int]], now: float) -> None:
        """Read rotated files whose content we never saw.

        A file can be created, written and rotated between two scans, or while the shipper was
        down; its lines then exist only under a rotated name the globs do not match. Rotated
        siblings changed since the shipper first ran, whose head is not a known identity, are read
        once from the start. Known content (a ``.gz`` of a file already read) is skipped, and even
        a second read would only produce the same ids, which Elasticsearch refuses as 409s.
        """
        # File times come from the kernel's coarse clock, which lags time.time() by up to a tick:
        # a file written just after the store was created can look a little older than it is.
        horizon = max(
            self.store.created - MTIME_SLACK, time.time() - self.watch.forget_finished_after_hours * 3600
        )
        for inp in self.inputs:
            for full, st in self._rotated_files(inp):
                ident = (st.st_dev, st.st_ino)
                if ident in seen or ident in self._by_inode or st.st_mtime < horizon:
                    continue
                sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                if sig in self._checked_siblings:
                    continue
                self._checked_siblings.add(sig)
                head = read_head_path(full)
                if not head or self._identify(head) is not None:
                    continue
                fp = fingerprint_head(head, allow_partial=True)
                if fp is None or fp.key in self._harvesters:
                    continue
                log.info("reading rotated file %s: its content was never seen", full)
                h = self._start(inp, fp, fp.key, full, st, 0, now, live=False)
                if h is not None:
                    self.stats.adopted_rotated += 1

    def _find_copy(
        self, fp: Fingerprint, path: str, min_size: int, exclude: tuple[int, int] | None = None
    ) -> tuple[str, os.stat_result] | None:
        """A rotated copy of ``path``'s content (``app.log.1``, ``app.log-2026…``, ``….gz``)."""
        candidates = []
        for full, st in self._siblings(path):
            if (st.st_dev, st.st_ino) == exclude:
                continue
            gz = full.endswith(".gz")
            if not gz and st.st_size < min_size:
                continue
            # Plain copies first (cheaper, and complete), newest first.
            candidates.append((gz, -st.st_mtime, full, st))
        for _gz, _mtime, full, st in sorted(candidates, key=lambda c: (c[0], c[1])):
            if matches(read_head_path(full, fp.head_len), fp):
                return full, st
        return None

    def _recover_unfinished(self, now: float) -> None:
        """After a restart: finish entries whose file was rotated away while we were down."""
        inputs = {inp.id: inp for inp in self.inputs}
        for state in self.store:
            if state.finished or state.key in self._harvesters:
                continue
            inp = inputs.get(state.input_id)
            if inp is None:
                continue
            fp = Fingerprint(state.head_len, state.head)
            copy = self._find_copy(fp, state.path, state.offset)
            if copy is None:
                if state.size > state.offset:
                    log.warning(
                        "file %s was rotated away and deleted while the shipper was down; "
                        "bytes %d..%d were never acknowledged and cannot be read",
                        state.path,
                        state.offset,
                        state.size,
                    )
                    self.stats.files_lost += 1
                self.store.put(replace(state, finished=True))
                continue
            path, st = copy
            if not self._tail_matches(path, state):
                continue
            log.info("finishing %s from %s at offset %d", state.path, path, state.offset)
            h = self._start(inp, fp, state.key, path, st, state.offset, now, live=False)
            if h is not None:
                h.static = True
                self.stats.resumed_from_copy += 1

    def _maybe_finish(self, h: Harvester, now: float) -> None:
        if h.live or not h.eof or h.splitter.has_partial or h.grouper.open:
            return
        if h.static or h.src is None:
            grace = 0.0  # a copy, a .gz, or truncated away: its content is complete
        elif h.deleted:
            # Deleted: a writer that has not noticed yet may still append for a moment.
            grace = min(self.watch.close_inactive, DELETED_GRACE)
        else:
            grace = self.watch.close_inactive
        if now - h.last_data < grace:
            return
        h.close()
        h.finished = True
        # The inode is free from now on and may be handed to a new file at once.
        if self._by_inode.get((h.dev, h.ino)) is h:
            del self._by_inode[(h.dev, h.ino)]
        self.stats.files_finished += 1

    def _retire_finished(self) -> None:
        for key, h in list(self._harvesters.items()):
            if h.finished and self.tracker.pending(key) == 0:
                self._put_state(h, self.tracker.committed(key) or h.emitted_end, finished=True)
                del self._harvesters[key]
                if self._by_inode.get((h.dev, h.ino)) is h:
                    del self._by_inode[(h.dev, h.ino)]
                self.tracker.forget(key)

    def _forget_old_entries(self) -> None:
        cutoff = time.time() - self.watch.forget_finished_after_hours * 3600
        self.store.prune(cutoff)

    # ------------------------------------------------------------------ batches and acks

    def _emit(self, h: Harvester, records: list[Record], out: list[Batch]) -> None:
        if not records:
            return
        self._seq += 1
        start = h.emitted_end
        end = records[-1].end
        h.emitted_end = end
        batch = Batch(SourceRef(h.input.id, h.key, h.path), start, end, tuple(records), self._seq)
        self.tracker.sent(h.key, batch.seq, end, len(records))
        stats = self.stats
        stats.records += len(records)
        stats.bytes += end - start
        for r in records:
            if r.flags:
                if r.flags & TRUNCATED:
                    stats.truncated_lines += 1
                if r.flags & NO_NEWLINE:
                    stats.partial_lines += 1
        out.append(batch)

    def _apply_acks(self) -> None:
        moved: set[str] = set()
        while True:
            try:
                seq = self._acks.get_nowait()
            except queue.Empty:
                break
            key = self.tracker.ack(seq)
            if key is not None:
                moved.add(key)
        for key in moved:
            h = self._harvesters.get(key)
            committed = self.tracker.committed(key)
            if h is not None and committed is not None:
                self._put_state(h, committed)

    def _put_state(self, h: Harvester, offset: int, finished: bool = False) -> None:
        tail = None
        size = h.position
        fd = h.fileno()
        if fd is not None:
            try:
                size = max(size, os.fstat(fd).st_size)
                if offset > 0:
                    n = min(TAIL_LEN, offset)
                    data = os.pread(fd, n, offset - n)
                    tail = digest_of(data) if len(data) == n else None
            except OSError:
                tail = None
        self.store.put(
            FileState(
                key=h.key,
                input_id=h.input.id,
                path=h.path,
                dev=h.dev,
                ino=h.ino,
                head_len=h.fp.head_len,
                head=h.fp.digest,
                offset=offset,
                size=size,
                tail=tail,
                finished=finished,
            )
        )
