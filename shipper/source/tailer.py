"""The file server: find files, tell what each one is, read them, commit positions on ack.

Modelled on Vector's file source (paths provider, fingerprinter, checkpointer, acknowledgements)
and Filebeat's filestream (file-system events -> identifier -> harvesters with start/stop verbs,
cursor written only after the output acked):

- A periodic listing of the inputs' globs is the source of truth (discovery.py); inotify events
  only make a read or a listing happen sooner (watcher.py). Only files that changed are looked at.
- Identity (the rule, also in the README): a file met for the first time is linked to known content
  only when that content is *no longer where it was* -- renamed away, truncated after a copy
  (copytruncate), compressed, deleted --, the file is named like a rotation of it, was born after
  it, and holds it up to its acknowledged position (same head, same bytes before the position, the
  same length where the content is complete). Two files that exist at the same time are two files,
  whatever their bytes. A file whose bytes so far are a prefix of a file still in place (a
  copytruncate copy before the truncate, a ``.gz`` being written) waits ``copy_wait`` seconds for
  the original to lose its content; if it does not, it is read as a file of its own. New content
  gets a key derived from the host, its first line, its inode and birth time (fingerprint.py), so
  ids never collide across hosts or files.
- Rotation: a file renamed away is read to its end; a truncated or rewritten file has its unread
  bytes finished from a copy (plain or ``.gz``) when there is one; an unfinished file rotated while
  the shipper was down is found by inode or as a copy next to its path or its symlink's target;
  rotated files never seen are adopted. Unread bytes that are gone for good are reported (log line,
  ``files_lost``/``bytes_lost``), never dropped silently.
- Checkpoints only ever advance over acknowledged batches (acks.py) and are saved as a journal of
  what changed (checkpoint.py). Where a timeout ended a record, the cut is saved *before* the record
  leaves, so a re-read after a crash produces the same record with the same id.
- Reading pauses while ``max_pending_records`` are unacknowledged. Idle files are closed after
  ``close_inactive`` (and beyond ``max_open_files``) and reopened when they change.

All state is owned by the thread that calls :meth:`Tailer.poll`; :meth:`Tailer.ack` may be called
from any thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import queue
import socket
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from ..config import InputConfig, WatchConfig
from .acks import AckTracker
from .checkpoint import CheckpointStore, FileState
from .discovery import Ident, Seen, diff, list_files, watched_dirs
from .fingerprint import (
    TAIL_LEN,
    Fingerprint,
    birth_time_ns,
    derive_key,
    digest_of,
    fingerprint_head,
    first_line,
    gz_is_prefix,
    gz_length,
    is_compressed,
    last_line_end,
    matches,
    read_head_path,
    read_range,
)
from .harvester import REWRITTEN_UNDER_US, TRUNCATED_UNDER_US, Harvester, Identity
from .multiline import ContinuationRule
from .records import NO_NEWLINE, TRUNCATED, Batch, Record, SourceRef
from .rotation import find_inode, name_stems, named_like_rotation_of, resolved, rotated_names, siblings
from .watcher import DirectoryWatcher, Waker

log = logging.getLogger(__name__)

READ_BUDGET = 1024 * 1024  # bytes read from one file per turn, so one busy file cannot starve others
MTIME_SLACK = 5.0  # seconds
DELETED_GRACE = 2.0  # seconds a deleted file stays open after its last growth
PRUNE_EVERY = 60.0  # seconds between looks for forgettable checkpoint entries
#: Seconds between full listings when inotify watches every directory (see poll()).
SAFETY_SCAN_INTERVAL = 10.0


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
    rewrites: int = 0
    resumed_from_copy: int = 0
    #: Rotated files read from the start because their content had never been seen.
    adopted_rotated: int = 0
    #: Files matched by the globs recognised as copies of content already read (never re-read).
    copies_skipped: int = 0
    #: Files whose unread bytes were gone before they could be read, and how many bytes.
    files_lost: int = 0
    bytes_lost: int = 0


@dataclass(frozen=True)
class FileStatus:
    key: str
    input_id: str
    path: str
    committed: int
    read: int
    size: int | None
    live: bool


@dataclass
class _Pending:
    """A file seen but not started: no complete first line yet, or maybe a copy."""

    since: float
    size: int


class Tailer:
    def __init__(
        self,
        inputs: Iterable[InputConfig],
        store: CheckpointStore,
        watch: WatchConfig,
        rules: Mapping[str, ContinuationRule | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        host: str | None = None,
    ) -> None:
        self.inputs = tuple(inputs)
        self.store = store
        self.watch = watch
        self.rules = dict(rules or {})
        self.clock = clock
        self.host = host or socket.gethostname()
        self.stats = TailerStats()
        self.tracker = AckTracker()
        self._harvesters: dict[str, Harvester] = {}
        #: Harvesters by the inode of their source (plain or ``.gz``; open or suspended).
        self._by_inode: dict[Ident, Harvester] = {}
        #: Live harvesters by path, for inotify's "modified" events.
        self._by_path: dict[str, Harvester] = {}
        self._ready: set[str] = set()
        #: Files whose acknowledged position moved, or that got a cut, since the last save.
        self._changed: set[str] = set()
        #: Harvesters whose timer is due (a timeout to apply, an idle file to close).
        self._expiring: set[str] = set()
        #: Keys of harvesters finished but not yet retired (their last batches in flight).
        self._finished: set[str] = set()
        #: Keys of harvesters that opened or read their file, least recently first: the idle end
        #: is closed when more than ``max_open_files`` are open (entries may be stale: skipped).
        self._open_order: OrderedDict[str, None] = OrderedDict()
        self._timers: list[tuple[float, int, str]] = []
        self._timer_seq = itertools.count()
        self._timer_at: dict[str, float] = {}
        self._listing: dict[Ident, Seen] = {}
        #: Which listed paths the exclude patterns match (asked again at every scan otherwise).
        self._exclusions: dict[tuple[str, str], bool] = {}
        #: Symlinks matched by the globs (dangling ones too) and their targets.
        self._link_targets: dict[str, str] = {}
        self._pending: dict[Ident, _Pending] = {}
        #: Files to look at again at the next scan even if unchanged.
        self._recheck: set[Ident] = set()
        #: Files resolved as copies of known content (or finished), by their (size, mtime).
        self._known: dict[Ident, tuple[int, int]] = {}
        #: Rotated siblings already looked at, by (dev, ino, size, mtime): heads are read once.
        self._checked_siblings: set[tuple[int, int, int, int]] = set()
        #: Batches made during a scan (records flushed from a truncated file), handed out next poll.
        self._scan_batches: list[Batch] = []
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._seq = 0
        self._next_scan = 0.0
        self._next_save = 0.0
        self._next_prune = 0.0
        self._first_scan = True
        self._rescan_soon = False
        #: New keys were recorded since the last save (they must be durable before their ids leave).
        self._new_identities = False
        _raise_fd_limit(watch.max_open_files + 256)
        self.watcher = DirectoryWatcher(enabled=watch.mode == "inotify")
        self.wake = Waker(self.watcher)
        # A tailer dropped without close() (a test, a crash simulation) must not keep its inotify
        # instance: the kernel allows a user only a few (fs.inotify.max_user_instances).
        weakref.finalize(self, _release, self.watcher, self.wake)
        self._migrate_old_entries()

    # ------------------------------------------------------------------ public API

    def ack(self, seq: int) -> None:
        """The sink resolved every record of batch ``seq`` (indexed or dead-lettered)."""
        self._acks.put(seq)
        self.wake.set()

    def poll(self) -> list[Batch]:
        """One turn: apply acks, scan if due, read what changed, expire timeouts, save if due."""
        now = self.clock()
        self._apply_acks()
        self._follow_changes(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, key = heapq.heappop(timers)
            if self._timer_at.get(key) == at:
                del self._timer_at[key]
                self._expiring.add(key)
        batches, self._scan_batches = self._scan_batches, []
        cut = False
        expiring, self._expiring = self._expiring, set()
        for key in list(self._ready | expiring):
            h = self._harvesters.get(key)
            if h is None or h.finished:
                self._ready.discard(key)
                continue
            if key not in self._ready and h.eof and h.is_open and self._watched(h):
                # Only a timeout is due: with inotify on its directory, a write would have made it
                # ready, so there is nothing to read (one fstat saved per file and timeout).
                self._emit(h, h.expire(now, force=h.static), batches)
                if h.new_cut:
                    cut = True
                    self._changed.add(key)
                self._after_eof(h, now)
                continue
            if h.suspended and not h.resume():
                self._ready.discard(key)
                self._recheck.add((h.dev, h.ino))
                self._rescan_soon = True
                continue
            capacity = self.watch.max_pending_records - self.tracker.in_flight_records
            if capacity <= 0:
                break
            self._emit(h, h.read(READ_BUDGET, now, capacity), batches)
            opened = self._open_order
            if h.live:
                opened[key] = None
                opened.move_to_end(key)
            if len(opened) > self.watch.max_open_files:
                self._limit_open_files()
            if h.changed:
                self._ready.discard(key)
                self._on_changed(h, now, batches)
                continue
            if h.eof:
                self._ready.discard(key)
                self._emit(h, h.expire(now, force=h.static), batches)
                if h.new_cut:
                    cut = True
                    self._changed.add(key)
                self._after_eof(h, now)
        self._retire_finished()
        if cut or (self._new_identities and batches):
            # Records are about to leave whose ids must be found again after a crash: a cut made
            # by a timeout, or the key of new content (a copy taken while the shipper is down has
            # another inode, so its key could not be derived again). One journal write per turn.
            self._new_identities = False
            self._persist()
            self._next_save = now + self.watch.checkpoint_interval
        elif now >= self._next_save:
            self._persist()
            self._next_save = now + self.watch.checkpoint_interval
        return batches

    def keep_watch(self) -> None:
        """Between polls, while the sink takes nothing (an outage, or every record in flight):
        follow the directories without reading. New files are opened, files written to are
        reopened, files rotated away keep their descriptor: content that logrotate deletes before
        the sink recovers is still there to be read afterwards. Acknowledgements are saved."""
        now = self.clock()
        self._apply_acks()
        self._follow_changes(now)
        for key in list(self._ready):
            h = self._harvesters.get(key)
            if h is None or not h.suspended or h.finished:
                continue
            if len(self._open_order) >= self.watch.max_open_files:
                break  # the limit holds during an outage too
            if not h.resume():
                self._ready.discard(key)
                self._recheck.add((h.dev, h.ino))
                self._rescan_soon = True
            elif h.live:
                self._open_order[key] = None
                self._open_order.move_to_end(key)
        if now >= self._next_save:
            self._persist()
            self._next_save = now + self.watch.checkpoint_interval

    def _follow_changes(self, now: float) -> None:
        """Files written to become ready; a scan runs when something was created, moved or
        deleted, or when it is due."""
        changed, rescan = self.watcher.changes()
        for path in changed:
            h = self._by_path.get(path)
            if h is not None:
                self._ready.add(h.key)
                if h.fd is None:
                    h.written_while_closed = True
        if rescan or self._rescan_soon or now >= self._next_scan:
            self._rescan_soon = False
            self.scan(now)
            interval = self.watch.scan_interval
            if self.watcher.complete and not self._pending and not self._recheck:
                # Every directory sends events (a create, move or delete starts a scan at once;
                # a write makes its file ready) and no file waits for a decision: the full
                # listing is only a safety net.
                interval = max(interval, SAFETY_SCAN_INTERVAL)
            self._next_scan = now + interval

    def _persist(self) -> None:
        """Record the files whose acknowledged position moved or that were cut, then save: one
        entry per file per save, however many batches were acknowledged in between."""
        changed, self._changed = self._changed, set()
        for key in changed:
            h = self._harvesters.get(key)
            if h is not None:
                h.new_cut = False
                self._put_state(h)
        self.store.save()

    @property
    def more_to_read(self) -> bool:
        """Files known to hold unread bytes (read budget or capacity ran out): poll again at once.
        Otherwise the caller may sleep until an event, so a trickle of lines is read in a few
        turns a second instead of one turn per line."""
        return bool(self._ready) or bool(self._scan_batches)

    @property
    def backpressured(self) -> bool:
        return self.tracker.in_flight_records >= self.watch.max_pending_records

    def save(self) -> None:
        """Write acknowledged positions to the checkpoint store (no-op when nothing changed)."""
        self._apply_acks()
        self._persist()

    def close(self) -> None:
        self.save()
        for h in self._harvesters.values():
            h.close()
        self.store.close()
        self.watcher.close()
        self.wake.close()

    def watched_dirs(self) -> set[str]:
        dirs = watched_dirs(self.inputs)
        dirs.update(os.path.dirname(target) for target in self._link_targets.values())
        for h in self._harvesters.values():
            dirs.add(os.path.dirname(h.path) or ".")
            if h.real_path:
                dirs.add(os.path.dirname(h.real_path) or ".")
        return {d for d in dirs if os.path.isdir(d)}

    def files(self) -> list[FileStatus]:
        """Per-file positions; safe to call from another thread (for metrics): it works on a copy
        of the harvester list and tolerates files closed meanwhile."""
        out = []
        for h in list(self._harvesters.values()):
            committed = self.tracker.committed(h.key)
            out.append(
                FileStatus(
                    h.key,
                    h.input.id,
                    h.path,
                    committed or 0,
                    h.position,
                    None if h.finished else h.last_size,
                    h.live and not h.finished,
                )
            )
        return out

    # ------------------------------------------------------------------ scanning

    def scan(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self.watcher.update(self.watched_dirs()):
            self._next_scan = now  # a directory just watched: events before that were missed
        link_targets: dict[str, str] = {}
        listing = list_files(self.inputs, link_targets, self._exclusions)
        self._link_targets = link_targets
        changes = diff(self._listing, listing)
        self._listing = listing
        to_discover: dict[Ident, Seen] = {}
        gone: list[Harvester] = []
        for change in changes:
            ident, seen = change.ident, change.after
            h = self._by_inode.get(ident)
            if seen is None:
                self._pending.pop(ident, None)
                self._known.pop(ident, None)
                if h is not None:
                    gone.append(h)
                continue
            if h is None:
                to_discover[ident] = seen
                continue
            if h.compressed:
                continue  # a compressed source does not grow, and its size is not its length
            if h.is_open and h.live and seen.path == h.path and seen.size >= h.position:
                # The common case, thousands of times a scan: a followed file grew (or was read).
                if seen.size > h.position:
                    h.last_size = max(h.last_size, seen.size)
                    self._ready.add(h.key)
                continue
            if h.suspended and not h.resume(seen.path):
                # The inode number now belongs to another file: ours was deleted while closed.
                del self._by_inode[ident]
                self._vanished_while_closed(h, now, exclude=ident)
                to_discover[ident] = seen
                continue
            if seen.size < h.position:
                # Shrunk: truncated. (A rewrite that grew is caught by the read, and by any
                # identity decision that asks whether this file still holds its content.)
                h.changed = h.changed or TRUNCATED_UNDER_US
                self._on_changed(h, now, self._scan_batches)
                to_discover[ident] = seen  # the same inode now holds new content
            else:
                self._seen_at(h, seen)
                self._ready.add(h.key)
        for ident in self._recheck | self._pending.keys():
            seen = listing.get(ident)
            if seen is not None and ident not in self._by_inode:
                to_discover.setdefault(ident, seen)
        self._recheck.clear()
        for h in gone:
            self._gone_from_globs(h, now)
        for h in self._harvesters.values():
            if not h.live and not h.finished and h.is_open:
                self._ready.add(h.key)  # rotated away: a late writer may still append
        if self._first_scan:
            # What was being read when the shipper stopped is settled first: its copies (a file
            # copied or compressed while the shipper was down) are then not taken for new files.
            self._recover_unfinished(now)
        for seen in to_discover.values():
            self._discover(seen, now)
        self._adopt_rotated(now)
        self._first_scan = False
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            self._forget_old_entries()

    def _watched(self, h: Harvester) -> bool:
        return h.live and self.watcher.watching(os.path.dirname(h.path) or ".")

    def _seen_at(self, h: Harvester, seen: Seen) -> None:
        if h.path != seen.path or not h.live:
            if self._by_path.get(h.path) is h:
                del self._by_path[h.path]
            h.path = seen.path
            h.real_path = resolved(seen.path)
            h.live = not h.static
            if h.live:
                self._by_path[h.path] = h

    def _gone_from_globs(self, h: Harvester, now: float) -> None:
        """``h``'s file is no longer at a path the globs match: rotated away, or deleted."""
        if self._by_path.get(h.path) is h:
            del self._by_path[h.path]
        if h.live:
            h.live = False
            self.stats.rotations += 1
            log.info("file rotated away or deleted, reading it to its end", extra={"path": h.path})
            if not h.compressed:
                found = find_inode(h.path, h.real_path, h.dev, h.ino, h.birth)
                if found is not None:
                    h.path = found[0]  # its rotated name: where it is looked for after a restart
        if h.suspended:
            found = find_inode(h.path, h.real_path, h.dev, h.ino, h.birth)
            if found is None or not h.resume(found[0]):
                self._vanished_while_closed(h, now, exclude=(h.dev, h.ino))
                return
        if not h.compressed and not h.check():
            # Truncated or rewritten on its way out: settle that before any copy is looked at.
            self._on_changed(h, now, self._scan_batches)
            return
        st = h.fstat()
        h.deleted = st is not None and st.st_nlink == 0
        self._ready.add(h.key)

    # ------------------------------------------------------------------ identity

    def _discover(self, seen: Seen, now: float, adopted: bool = False) -> None:
        """Decide what a file not followed yet is: known content, a copy, or a new file."""
        ident = seen.ident
        if ident in self._by_inode:
            return
        sig = (seen.size, seen.mtime_ns)
        if self._known.get(ident) == sig or seen.size == 0:
            return
        head = read_head_path(seen.path)
        if not head:
            return
        inp = self.inputs[seen.input_index]
        compressed = is_compressed(seen.path)
        live = not adopted and not compressed

        # 1. What this inode held when we last saw it (a restart, or a file that came back).
        for entry in self.store.at_inode(*ident):
            if not _same_instance(seen.path, entry) or not matches(head, _fp(entry)):
                continue  # the inode was freed and handed to a new file
            if not self._holds(seen.path, entry):
                continue  # an earlier content of this inode (rewritten in place, or reused)
            if entry.key in self._harvesters:
                # Being read elsewhere, or just read here and awaiting its last acknowledgements:
                # look again once that is settled.
                self._recheck.add(ident)
                return
            if entry.finished and (compressed or seen.size <= entry.offset):
                self._known[ident] = sig
                return
            self._pending.pop(ident, None)
            self._start(inp, _identity(entry), seen.path, entry.offset, now, live, entry.cuts)
            return

        line = first_line(head)
        if line is None:
            pending = self._pending.setdefault(ident, _Pending(now, seen.size))
            if now - pending.since < inp.partial_line_timeout:
                self._recheck.add(ident)
                return
            line = first_line(head, allow_partial=True)
            if line is None:
                return
        line0 = digest_of(line)

        # 2. Known content with the same head: moved here, or a copy of a file still in place.
        suspect = False
        birth = birth_time_ns(seen.path)
        for cand in sorted(self.store.by_line0(line0), key=lambda c: -_name_closeness(seen.path, c)):
            if (cand.dev, cand.ino) == ident and _same_instance(seen.path, cand):
                continue  # this very file (step 1 found it holds other content now)
            if not matches(head, _fp(cand)):
                continue
            if not (
                named_like_rotation_of(seen.path, cand.path)
                or named_like_rotation_of(seen.path, cand.real_path)
            ):
                continue  # starts like it, but is not named like a rotation of it: another file
            if {seen.path, resolved(seen.path)} & {cand.path, cand.real_path} - {None}:
                continue  # a new file where that one was (rotation leaves copies elsewhere)
            if birth and cand.birth and birth <= cand.birth:
                continue  # born before that file: an older file, not a copy of it
            if self._in_place(cand):
                verdict = self._prefix_of(seen, cand)
                if verdict is not False:
                    suspect = True
            elif self._same_length(seen, cand) and self._holds(seen.path, cand):
                self._pending.pop(ident, None)
                self._link(cand, seen, now, live, sig)
                return
        if suspect:
            waiting = self._pending.get(ident)
            if waiting is None or waiting.size != seen.size:
                waiting = self._pending[ident] = _Pending(now, seen.size)
            if now - waiting.since < self.watch.copy_wait:
                self._recheck.add(ident)
                return
            log.info(
                "file starts like another one that is still in place: reading it as a file of its own",
                extra={"path": seen.path},
            )
        self._pending.pop(ident, None)

        # 3. New content.
        fp = fingerprint_head(head, allow_partial=True)
        if fp is None:
            return
        key = self._new_key(line, seen)
        offset = 0
        if inp.start_at == "end" and self._first_scan and live:
            offset = last_line_end(seen.path, seen.size)
        h = self._start(inp, Identity(key, fp, line0), seen.path, offset, now, live)
        self._new_identities = True
        if h is not None and adopted:
            self.stats.adopted_rotated += 1

    def _new_key(self, line: bytes, seen: Seen) -> str:
        birth = birth_time_ns(seen.path)
        for generation in itertools.count():
            key = derive_key(self.host, line, seen.ino, birth, generation)
            if key not in self.store and key not in self._harvesters:
                return key
        raise AssertionError("unreachable")

    def _in_place(self, state: FileState) -> bool:
        """Is ``state``'s content still in the file that had it (not moved, truncated, deleted)?"""
        h = self._harvesters.get(state.key)
        if h is not None and not h.finished:
            if h.static or h.changed:
                return False
            st = h.fstat()
            if st is not None:
                return st.st_nlink > 0 and h.check()
            # Suspended: look for its file.
        path = self._where_is(state)
        return path is not None and matches(read_head_path(path), _fp(state))

    def _where_is(self, state: FileState) -> str | None:
        """The path of ``state``'s own file (its inode, same birth) if it still exists: at its
        path, at another path the globs match, or renamed next to it (rotated)."""
        seen = self._listing.get((state.dev, state.ino))
        candidates = [state.path, state.real_path, seen.path if seen is not None else None]
        for path in candidates:
            if not path:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (state.dev, state.ino) and _same_instance(path, state):
                return path
        found = find_inode(state.path, state.real_path, state.dev, state.ino, state.birth)
        if found is not None and _same_instance(found[0], state):
            return found[0]
        return None

    def _reader(self, state: FileState) -> Callable[[int, int], bytes | None]:
        """Read ``state``'s own file: through the open descriptor when it is being read (its path
        may hold another file since a rename), else at its path if the inode is still there."""
        h = self._harvesters.get(state.key)
        if h is not None and h.fd is not None:
            fd = h.fd
            return lambda start, n: _pread(fd, n, start)
        path = state.path
        try:
            st = os.stat(path)
        except OSError:
            return lambda start, n: None
        if (st.st_dev, st.st_ino) != (state.dev, state.ino) or not _same_instance(path, state):
            return lambda start, n: None
        return lambda start, n: read_range(path, start, n)

    def _prefix_of(self, seen: Seen, state: FileState) -> bool | None:
        """Are ``seen``'s bytes so far a prefix of ``state``'s file? None: cannot tell yet (a
        ``.gz`` still being written)."""
        theirs = self._reader(state)
        if is_compressed(seen.path):
            return gz_is_prefix(seen.path, theirs)
        n = seen.size
        k = min(TAIL_LEN, n)
        mine = read_range(seen.path, n - k, k)
        return mine is not None and len(mine) == k and mine == theirs(n - k, k)

    def _same_length(self, seen: Seen, state: FileState) -> bool:
        """Can ``seen`` be a copy of ``state``'s content by its length? Where that content is
        complete (its file was deleted, or it was read to its end), a copy has exactly its length:
        a longer file that merely starts with the same bytes is another file. Where the content's
        end is not known (a file that vanished while the shipper was down), any length will do."""
        h = self._harvesters.get(state.key)
        complete: int | None = None
        if h is not None and not h.finished:
            st = h.fstat()
            if st is not None and (st.st_nlink == 0 or h.static):
                if not h.check():
                    return True  # truncated under the reader: its length says nothing
                complete = st.st_size  # deleted, or a copy: it will not grow
            elif h.compressed:
                complete = gz_length(h.path)
        elif state.finished:
            complete = state.offset
        if complete is None:
            return True
        length = gz_length(seen.path) if is_compressed(seen.path) else seen.size
        return length is None or length % (1 << 32) == complete % (1 << 32)

    def _holds(self, path: str, state: FileState) -> bool:
        """Does the file at ``path`` (head already matched) hold ``state``'s bytes up to its
        acknowledged offset? Checked on the bytes just before the offset."""
        if state.offset == 0 or state.tail is None:
            return True
        n = min(TAIL_LEN, state.offset)
        data = read_range(path, state.offset - n, n)
        return data is not None and len(data) == n and digest_of(data) == state.tail

    def _link(self, state: FileState, seen: Seen, now: float, live: bool, sig: tuple[int, int]) -> None:
        """``seen`` holds ``state``'s content, which left its own file: continue from here."""
        ident = seen.ident
        h = self._harvesters.get(state.key)
        if h is not None and h.finished:
            self._recheck.add(ident)  # its last batches are in flight: decide once they are resolved
            return
        if h is not None:
            if h.suspended:
                # Its file is gone (closed while idle, then rotated away): go on from the copy.
                if self._by_inode.get((h.dev, h.ino)) is h:
                    del self._by_inode[(h.dev, h.ino)]
                if not self._move_to_copy(h, seen.path):
                    self._recheck.add(ident)
                return
            self._known[ident] = sig  # it is still being read where it is
            self.stats.copies_skipped += 1
            return
        compressed = is_compressed(seen.path)
        more = not compressed and seen.size > state.offset
        if state.finished and not more:
            self._known[ident] = sig
            self.stats.copies_skipped += 1
            self.store.put(
                replace(
                    state,
                    path=seen.path,
                    dev=seen.dev,
                    ino=seen.ino,
                    real_path=None,
                    birth=birth_time_ns(seen.path),
                )
            )
            return
        log.info("continuing %s from %s at offset %d", state.path, seen.path, state.offset)
        inp = self._input(state.input_id) or self.inputs[seen.input_index]
        if self._start(inp, _identity(state), seen.path, state.offset, now, live, state.cuts) is not None:
            self.stats.resumed_from_copy += 1

    # ------------------------------------------------------------------ rotation

    def _vanished_while_closed(self, h: Harvester, now: float, exclude: Ident) -> None:
        """``h``'s file was deleted while closed (idle): what was appended since it was last read
        is only in a copy now (rotated and compressed, say). Continue from the copy, or report
        what is known to be lost."""
        if self._by_inode.get((h.dev, h.ino)) is h:
            del self._by_inode[(h.dev, h.ino)]
        copy = self._find_copy(h, exclude=exclude)
        if copy is not None:
            path, st = copy
            if self._move_to_copy(h, path, st):
                log.info("file deleted while closed; finishing it from its copy", extra={"path": path})
                return
        # Written to after it was closed, then rotated away and deleted before it could be
        # reopened (several rotations within a moment): lost, in an amount nobody knows.
        self._report_unread(
            h, "deleted while closed", "written to while closed, then rotated away and deleted"
        )
        self._finish(h, now, self._scan_batches)

    def _on_changed(self, h: Harvester, now: float, out: list[Batch]) -> None:
        """``h``'s file shrank or was rewritten under it: finish its content from a copy if there is
        one; the inode itself now holds new content and is discovered again."""
        if h.changed == REWRITTEN_UNDER_US:
            self.stats.rewrites += 1
            log.warning(
                "file rewritten in place; its new content is read from the start", extra={"path": h.path}
            )
        else:
            self.stats.truncations += 1
        old_ident = (h.dev, h.ino)
        if self._by_inode.get(old_ident) is h:
            del self._by_inode[old_ident]
        if self._by_path.get(h.path) is h:
            del self._by_path[h.path]
        self._recheck.add(old_ident)
        self._rescan_soon = True
        copy = self._find_copy(h, exclude=old_ident)
        if copy is not None:
            path, st = copy
            log.info("file truncated; finishing its unread part from the copy", extra={"path": path})
            if self._move_to_copy(h, path, st):
                return
        # Written to while closed, and truncated (or rewritten) before it was reopened: what was
        # written, if more than the truncation itself, is gone, in an amount nobody knows.
        if not self._report_unread(
            h,
            "truncated before it was read",
            "written to while closed, then truncated with no copy; lines written since it was "
            "last read, if any, are gone",
        ):
            log.info(
                "file truncated with no copy after it was read to its end; read again from 0",
                extra={"path": h.path},
            )
        self._finish(h, now, out)

    def _move_to_copy(self, h: Harvester, path: str, st: os.stat_result | None = None) -> bool:
        """Go on reading ``h``'s content from its copy at ``path``; False if it cannot be read."""
        try:
            h.move_to(path, st if st is not None else os.stat(path))
        except (OSError, EOFError) as exc:
            log.warning("cannot read copy %s: %s", path, exc)
            return False
        self.stats.resumed_from_copy += 1
        self._by_inode[(h.dev, h.ino)] = h
        self._ready.add(h.key)
        return True

    def _report_unread(self, h: Harvester, known: str, unknown: str) -> bool:
        """``h``'s file is gone or changed with no copy: report the bytes known unread (``known``
        says why), or a loss of unknown size if it was written to while closed. False if neither."""
        unread = max(0, h.last_size - h.position)
        if unread:
            self._report_lost(h.path, unread, known)
        elif h.written_while_closed:
            self._report_lost(h.path, 0, unknown)
        else:
            return False
        return True

    def _copies(
        self,
        path: str,
        real_path: str | None,
        min_size: int,
        exclude: Ident | None = None,
        birth: int = 0,
    ) -> list[tuple[str, os.stat_result]]:
        """Rotated files next to ``path`` (or its target) that could hold its content, the most
        likely first: named after this very file (``app.log.1`` -> ``app.log.1.gz``) before a mere
        sibling, plain before compressed, newest first.

        Not candidates: a file at ``path`` itself (a new file where that one was: rotation leaves
        copies under other names), a file born before the content's own file (``birth``), and a
        file being read (unless its inode number is merely reused by a file born later)."""
        names = {os.path.basename(p) for p in (path, real_path) if p}
        own = {p for p in (path, real_path) if p}
        ranked = []
        for full, st in siblings(path, real_path):
            ident = (st.st_dev, st.st_ino)
            if ident == exclude or full in own or resolved(full) in own:
                continue
            gz = is_compressed(full)
            if not gz and st.st_size < min_size:
                continue
            born = birth_time_ns(full)
            reader = self._by_inode.get(ident)
            if reader is not None and (not born or not reader.birth or born == reader.birth):
                continue
            if birth and born and born <= birth:
                continue
            own_name = any(os.path.basename(full).startswith(name) for name in names)
            ranked.append((not own_name, gz, -st.st_mtime, full, st))
        ranked.sort(key=lambda c: c[:3])
        return [(full, st) for *_rank, full, st in ranked]

    def _find_copy(self, h: Harvester, exclude: Ident) -> tuple[str, os.stat_result] | None:
        """A rotated copy of ``h``'s content holding at least what ``h`` read, checked on its head
        and on the bytes before ``h``'s position."""
        pos = h.position
        tail = h.tail_bytes
        for full, st in self._copies(h.path, h.real_path, pos, exclude, h.birth):
            if not matches(read_head_path(full, h.fp.head_len), h.fp):
                continue
            if tail is not None and pos and read_range(full, pos - len(tail), len(tail)) != tail:
                continue
            return full, st
        return None

    def _recover_unfinished(self, now: float) -> None:
        """After a restart: finish entries whose file was rotated away while the shipper was down,
        found by inode (renamed) or as a copy (copied, compressed) next to its path or target."""
        # The most specific first (longest head, most acknowledged): when several generations of
        # a file start with the same lines, each claims the copy that holds the most of it.
        unfinished = [s for s in self.store if not s.finished and s.key not in self._harvesters]
        for state in sorted(unfinished, key=lambda s: (-s.head_len, -s.offset)):
            inp = self._input(state.input_id)
            if inp is None:
                continue
            listed = self._listing.get((state.dev, state.ino))
            if (
                listed is not None
                and _same_instance(listed.path, state)
                and matches(read_head_path(listed.path), _fp(state))
                and self._holds(listed.path, state)
            ):
                continue  # still at a path the globs match: discovery takes it up as a live file
            found = find_inode(state.path, state.real_path, state.dev, state.ino, state.birth)
            if found is not None and (
                (state.dev, state.ino) in self._by_inode
                or not _same_instance(found[0], state)
                or not matches(read_head_path(found[0]), _fp(state))
            ):
                found = None
            if found is not None and self._holds(found[0], state):
                log.info("finishing %s, renamed to %s while the shipper was down", state.path, found[0])
                self._start(inp, _identity(state), found[0], state.offset, now, False, state.cuts)
                continue
            copy = self._find_copy_of_state(state)
            if copy is not None:
                log.info("finishing %s from %s at offset %d", state.path, copy, state.offset)
                h = self._start(inp, _identity(state), copy, state.offset, now, False, state.cuts)
                if h is not None:
                    h.static = True
                    self.stats.resumed_from_copy += 1
                continue
            known = max(0, state.size - state.offset)
            if self._where_is(state) is not None:
                # Its inode is still there with other content (truncated or rewritten in place
                # while the shipper was down, and no copy): what is known unread is lost, and
                # whatever was written after the shipper stopped, if anything, is gone too.
                self._report_lost(
                    state.path,
                    known,
                    "truncated or rewritten while the shipper was down, with no copy; lines written "
                    "after it stopped, if any, are gone too",
                )
            else:
                # Gone for good (more rotations while down than logrotate keeps): what is known to
                # be unread is counted, and whatever was written after the shipper stopped is gone.
                self._report_lost(
                    state.path,
                    known,
                    "rotated away and deleted while the shipper was down; lines written after it "
                    "stopped are gone too",
                )
            self.store.put(replace(state, finished=True))

    def _find_copy_of_state(self, state: FileState) -> str | None:
        fp = _fp(state)
        for full, _st in self._copies(state.path, state.real_path, state.offset, None, state.birth):
            if matches(read_head_path(full, fp.head_len), fp) and self._holds(full, state):
                return full
        return None

    def _adopt_rotated(self, now: float) -> None:
        """Read rotated files whose content we never saw.

        A file can be created, written and rotated between two scans, or while the shipper was
        down; its lines then exist only under a rotated name the globs do not match. Rotated
        siblings changed since the shipper first ran, and not known by inode or as a copy, go
        through the same identity rules as any file.
        """
        # File times come from the kernel's coarse clock, which lags time.time() by up to a tick:
        # a file written just after the store was created can look a little older than it is.
        horizon = max(
            self.store.created - MTIME_SLACK, time.time() - self.watch.forget_finished_after_hours * 3600
        )
        targets = sorted(self._link_targets.values())
        stems: dict[str, set[str]] | None = None  # directory -> names followed or there, cut short
        listed: set[str] = set()

        def known(path: str) -> bool:
            """Is ``path``, or a rotation of it, there (``app.log``, ``app.log.2``), or was it
            followed? Then its rotations may be in a subdirectory (``olddir``). Asked only when a
            subdirectory holds a candidate."""
            nonlocal stems
            directory, base = os.path.split(path)
            if stems is None:
                stems = {}
                followed = (p for state in self.store for p in (state.path, state.real_path) if p)
                for p in followed:
                    stems.setdefault(os.path.dirname(p), set()).update(name_stems(os.path.basename(p)))
            if directory not in listed:
                listed.add(directory)
                with contextlib.suppress(OSError):
                    here = stems.setdefault(directory, set())
                    for name in os.listdir(directory or "."):
                        here.update(name_stems(name))
            return base in stems.get(directory, ())

        for index, inp in enumerate(self.inputs):
            for full, st in rotated_names(inp, targets, known):
                ident = (st.st_dev, st.st_ino)
                if ident in self._listing or ident in self._by_inode or st.st_mtime < horizon:
                    continue
                sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                if sig in self._checked_siblings:
                    continue
                if any(
                    e.finished and e.offset >= st.st_size and _same_instance(full, e) and self._holds(full, e)
                    for e in self.store.at_inode(*ident)
                ):
                    self._checked_siblings.add(sig)
                    continue
                before = self.stats.files_opened
                seen = Seen(full, index, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                self._discover(seen, now, adopted=True)
                if ident not in self._pending and ident not in self._recheck:
                    self._checked_siblings.add(sig)
                if self.stats.files_opened > before:
                    log.info("reading rotated file %s: its content was never seen", full)

    # ------------------------------------------------------------------ harvester life cycle

    def _start(
        self,
        inp: InputConfig,
        identity: Identity,
        path: str,
        offset: int,
        now: float,
        live: bool,
        cuts: tuple[tuple[int, int], ...] = (),
    ) -> Harvester | None:
        try:
            st = os.stat(path)
            h = Harvester.start(
                inp, identity, path, resolved(path), st, offset, self.rules.get(inp.id), now, cuts
            )
        except (OSError, EOFError) as exc:
            log.warning("cannot open %s: %s", path, exc)
            return None
        h.live = live and not h.static
        if h.fd is not None and h.live:
            if len(self._open_order) >= self.watch.max_open_files:
                self._limit_open_files()
                if len(self._open_order) >= self.watch.max_open_files:
                    h.suspend()  # at the limit: reopened when its turn to be read comes
            if h.fd is not None:
                self._open_order[h.key] = None
        self._harvesters[h.key] = h
        self._by_inode[(h.dev, h.ino)] = h
        if h.live:
            self._by_path[h.path] = h
        tail = h.tail_bytes
        known_tail = tail is not None and offset > 0 and len(tail) == min(TAIL_LEN, offset)
        self.tracker.start(h.key, offset, digest_of(tail) if tail is not None and known_tail else None)
        self.stats.files_opened += 1
        self._put_state(h)
        self._ready.add(h.key)
        return h

    def _after_eof(self, h: Harvester, now: float) -> None:
        """At end of file: wait for a timeout, finish a file that will not grow, or close an idle
        one until it changes."""
        if h.waiting:
            delays = []
            if h.splitter.has_partial:
                delays.append(h.input.partial_line_timeout)
            if h.grouper.open:
                delays.append(h.input.multiline_timeout)
            self._schedule(h, h.last_data + min(delays))
            return
        if h.static:
            self._finish(h, now, None)
            return
        if not h.live:
            grace = min(self.watch.close_inactive, DELETED_GRACE) if h.deleted else self.watch.close_inactive
            if now - h.last_data >= grace:
                self._finish(h, now, None)
            else:
                self._schedule(h, h.last_data + grace)
            return
        if now - h.last_data >= self.watch.close_inactive:
            h.suspend()
        else:
            self._schedule(h, h.last_data + self.watch.close_inactive)

    def _schedule(self, h: Harvester, at: float) -> None:
        current = self._timer_at.get(h.key)
        if current is not None and current <= at:
            return  # an earlier look is planned; it will plan the next one
        self._timer_at[h.key] = at
        heapq.heappush(self._timers, (at, next(self._timer_seq), h.key))

    def _finish(self, h: Harvester, now: float, out: list[Batch] | None) -> None:
        """Nothing more will be read from ``h``: flush what it holds and close it."""
        if out is not None and h.waiting:
            h.eof = True
            self._emit(h, h.expire(now, force=True), out)
        h.stop()
        if self._by_inode.get((h.dev, h.ino)) is h:
            del self._by_inode[(h.dev, h.ino)]
        if self._by_path.get(h.path) is h:
            del self._by_path[h.path]
        self._ready.discard(h.key)
        self._finished.add(h.key)
        self.stats.files_finished += 1

    def _retire_finished(self) -> None:
        """Forget finished harvesters once their last batch is acknowledged."""
        for key in list(self._finished):
            h = self._harvesters.get(key)
            if h is None:
                self._finished.discard(key)
                continue
            if self.tracker.pending(key) == 0:
                self._finished.discard(key)
                self._put_state(h, finished=True)
                del self._harvesters[key]
                self._timer_at.pop(key, None)
                self.tracker.forget(key)
                self._recheck.add((h.dev, h.ino))  # what is at its inode now is for discovery

    def _limit_open_files(self) -> None:
        """Close the least recently read files beyond ``max_open_files`` (Filebeat's
        ``harvester_limit`` with ``close.inactive``): they are reopened when they change. A file
        with unread bytes is not closed; it moves to the recent end."""
        opened = self._open_order
        budget = len(opened)
        while len(opened) > self.watch.max_open_files and budget > 0:
            budget -= 1
            key, _ = opened.popitem(last=False)
            h = self._harvesters.get(key)
            if h is None or h.fd is None or h.finished:
                continue  # stale: closed, suspended or retired meanwhile
            if not h.live or h.static:
                continue  # rotated away or a copy: it finishes soon, and could not be found again
            if h.eof and key not in self._ready and not h.changed:
                h.suspend()
            else:
                opened[key] = None

    def _forget_old_entries(self) -> None:
        cutoff = time.time() - self.watch.forget_finished_after_hours * 3600

        def still_there(state: FileState) -> bool:
            try:
                st = os.stat(state.path)
            except OSError:
                return False
            return (st.st_dev, st.st_ino) == (state.dev, state.ino) and _same_instance(state.path, state)

        self.store.prune(cutoff, keep=still_there)

    def _report_lost(self, path: str, nbytes: int, why: str) -> None:
        """Loss no shipper can prevent is reported, never silent: one warning, two counters."""
        self.stats.files_lost += 1
        self.stats.bytes_lost += nbytes
        amount = f"{nbytes} unread bytes" if nbytes else "lines of unknown size"
        log.warning(
            "%s: %s known to be gone (%s); they cannot be shipped",
            path,
            amount,
            why,
            extra={"path": path, "bytes_lost": nbytes},
        )

    def _input(self, input_id: str) -> InputConfig | None:
        return next((inp for inp in self.inputs if inp.id == input_id), None)

    def _migrate_old_entries(self) -> None:
        """Entries written by an older version lack the first-line digest that finds copies."""
        for state in self.store:
            if state.line0:
                continue
            line = first_line(read_head_path(state.path), allow_partial=True)
            try:
                st = os.stat(state.path)
                here = (st.st_dev, st.st_ino) == (state.dev, state.ino)
            except OSError:
                here = False
            if line is not None and here and matches(read_head_path(state.path), _fp(state)):
                self.store.put(replace(state, line0=digest_of(line)))

    # ------------------------------------------------------------------ batches and acks

    def _emit(self, h: Harvester, records: list[Record], out: list[Batch]) -> None:
        if not records:
            return
        self._seq += 1
        start = h.emitted_end
        end = records[-1].end
        h.emitted_end = end
        batch = Batch(SourceRef(h.input.id, h.key, h.path), start, end, tuple(records), self._seq)
        self.tracker.sent(h.key, batch.seq, end, len(records), _tail_digest(h, end))
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
        self._changed |= moved

    def _put_state(self, h: Harvester, finished: bool = False) -> None:
        """Record ``h`` at its acknowledged position (with the digest of the bytes before it)."""
        offset = self.tracker.committed(h.key)
        if offset is None:
            offset = h.emitted_end
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
                size=max(h.position, h.last_size),
                tail=self.tracker.committed_tail(h.key),
                finished=finished,
                line0=h.identity.line0,
                real_path=h.real_path,
                cuts=h.cuts_after(offset),
                birth=h.birth,
                updated=time.time(),
            )
        )


def _name_closeness(path: str, state: FileState) -> int:
    """How much of ``path``'s name is ``state``'s name: ``app.log.1.gz`` is closer to ``app.log.1``
    (a copy of that file) than to ``app.log`` (its sibling). Ranks candidates for a copy."""
    name = os.path.basename(path)
    best = 0
    for own in (state.path, state.real_path):
        base = os.path.basename(own) if own else ""
        if base and name.startswith(base):
            best = max(best, len(base))
    return best


def _same_instance(path: str, state: FileState) -> bool:
    """Is the inode at ``path`` the one ``state`` saw, not a later file that reuses its number?
    Decided by the birth time where the file system keeps one."""
    if not state.birth:
        return True
    birth = birth_time_ns(path)
    return not birth or birth == state.birth


def _raise_fd_limit(wanted: int) -> None:
    """Lift the soft limit on open descriptors towards ``wanted`` (never past the hard limit):
    the default soft limit of 1,024 is below what following thousands of files needs."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):
        pass


def _release(watcher: DirectoryWatcher, wake: Waker) -> None:
    watcher.close()
    wake.close()


def _fp(state: FileState) -> Fingerprint:
    return Fingerprint(state.head_len, state.head)


def _identity(state: FileState) -> Identity:
    return Identity(state.key, _fp(state), state.line0)


def _tail_digest(h: Harvester, end: int) -> str | None:
    """Digest of the TAIL_LEN bytes before ``end`` (or all of them, near the start), from what the
    harvester holds when it can, else one ``pread``; None where it cannot tell (a ``.gz``)."""
    n = min(TAIL_LEN, end)
    if n == 0:
        return None
    data: bytes | None = None
    if end == h.position and h.tail_bytes is not None and len(h.tail_bytes) >= n:
        data = h.tail_bytes[-n:]
    elif h.fd is not None:
        try:
            data = os.pread(h.fd, n, end - n)
        except OSError:
            data = None
    return digest_of(data) if data is not None and len(data) == n else None


def _pread(fd: int, n: int, offset: int) -> bytes | None:
    try:
        return os.pread(fd, n, offset)
    except OSError:
        return None
