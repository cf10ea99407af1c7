"""Direct tests of the tailer's pure parts: line splitting, grouping, fingerprints, acks, store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.source import AckTracker, CheckpointStore, FileState
from shipper.source.checkpoint import CheckpointError
from shipper.source.fingerprint import MAX_HEAD, fingerprint_head, matches
from shipper.source.lines import LineSplitter
from shipper.source.multiline import Grouper
from shipper.source.records import NO_NEWLINE, TRUNCATED, Record, record_id


def split_all(
    data: bytes, cuts: list[int], limit: int = 1 << 20
) -> tuple[list[tuple[int, int, bytes, int]], LineSplitter]:
    sp = LineSplitter(0, limit)
    out = []
    prev = 0
    for cut in [*sorted(set(c % (len(data) + 1) for c in cuts)), len(data)]:
        out += sp.feed(data[prev:cut])
        prev = cut
    return out, sp


@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_splitter_matches_bytes_split_whatever_the_chunking(data: bytes, cuts: list[int]) -> None:
    lines, sp = split_all(data, cuts)
    expected = data.split(b"\n")
    tail = expected.pop()
    assert [line for _o, _e, line, _f in lines] == expected
    # Offsets are contiguous and point at the line in the original bytes.
    pos = 0
    for offset, end, line, flags in lines:
        assert offset == pos and data[offset:end] == line + b"\n" and flags == 0
        pos = end
    partial = sp.take_partial()
    if tail:
        assert partial == (pos, len(data), tail, NO_NEWLINE)
    else:
        assert partial is None


@given(
    st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.integers(min_value=1, max_value=40),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
)
def test_splitter_cuts_long_lines_but_keeps_every_line_and_boundary(
    lines: list[bytes], limit: int, cuts: list[int]
) -> None:
    data = b"".join(line + b"\n" for line in lines)
    out, sp = split_all(data, cuts, limit)
    assert len(out) == len(lines)
    pos = 0
    for (offset, end, got, flags), line in zip(out, lines, strict=True):
        assert (offset, end) == (pos, pos + len(line) + 1)
        assert got == line[:limit]
        assert flags == (TRUNCATED if len(line) > limit else 0)
        pos = end
    assert sp.take_partial() is None


def test_splitter_memory_is_bounded_for_a_line_without_end() -> None:
    sp = LineSplitter(0, 100)
    for _ in range(1000):
        assert sp.feed(b"x" * 10_000) == []
    assert len(sp._pending) == 100
    (line,) = sp.feed(b"tail\nnext\n")[:1]
    assert line == (0, 10_000_005, b"x" * 100, TRUNCATED)


def prefix_rule(first: bytes, line: bytes) -> bool:
    return not line.startswith(b"[")


@given(
    st.lists(
        st.tuples(st.booleans(), st.binary(max_size=20).map(lambda b: b.replace(b"\n", b""))), max_size=40
    )
)
def test_grouper_every_line_in_exactly_one_record(items: list[tuple[bool, bytes]]) -> None:
    lines = [(b"[" if start else b" ") + body for start, body in items]
    data = b"".join(line + b"\n" for line in lines)
    sp = LineSplitter(0, 1 << 20)
    g = Grouper(prefix_rule, 1 << 20)
    out: list[Record] = []
    g.feed(sp.feed(data), out)
    g.flush(out)
    assert b"\n".join(r.data for r in out) == b"\n".join(lines)
    pos = 0
    for r in out:
        assert r.offset == pos and data[r.offset : r.end] == r.data + b"\n"
        pos = r.end
        assert r is out[0] or r.data.startswith(b"[")
    assert pos == len(data)


def test_grouper_keeps_record_open_until_flushed() -> None:
    g = Grouper(prefix_rule, 1 << 20)
    out: list[Record] = []
    g.feed([(0, 6, b"[a] x", 0), (6, 12, b"  tb1", 0)], out)
    assert out == [] and g.open and g.open_offset == 0
    g.feed([(12, 18, b"[b] y", 0)], out)
    assert out == [Record(0, 12, b"[a] x\n  tb1", 0)]
    g.flush(out)
    assert out[-1] == Record(12, 18, b"[b] y", 0)


def test_grouper_bounds_record_size() -> None:
    g = Grouper(prefix_rule, 11)
    out: list[Record] = []
    g.feed([(0, 4, b"[a]", 0), (4, 12, b"  12345", 0), (12, 20, b"  67890", 0)], out)
    g.flush(out)
    assert out == [Record(0, 20, b"[a]\n  12345", TRUNCATED)]


def test_fingerprint_uses_complete_lines_only() -> None:
    assert fingerprint_head(b"no newline yet") is None
    fp = fingerprint_head(b"first\nsecond\npart")
    assert fp is not None and fp.head_len == len(b"first\nsecond\n")
    # The file grows: the identity does not change.
    assert matches(b"first\nsecond\npartial line done\nmore\n", fp)
    assert not matches(b"first\nsecont\n", fp)
    assert not matches(b"first\n", fp)  # shorter than the head: truncated
    partial = fingerprint_head(b"only partial", allow_partial=True)
    assert partial is not None and partial.head_len == 12
    long = fingerprint_head(b"x" * (MAX_HEAD + 10))
    assert long is not None and long.head_len == MAX_HEAD


def test_record_ids_are_deterministic_and_distinct() -> None:
    assert record_id("abc", 255) == record_id("abc", 255) == "abc-ff"
    assert record_id("abc", 0) != record_id("abd", 0)


def test_ack_tracker_commits_only_the_contiguous_prefix() -> None:
    t = AckTracker()
    t.start("k", 10)
    for seq, end in ((1, 20), (2, 30), (3, 40)):
        t.sent("k", seq, end, records=5)
    assert t.in_flight_records == 15
    assert t.ack(2) is None and t.committed("k") == 10
    assert t.ack(3) is None and t.committed("k") == 10
    assert t.ack(1) == "k" and t.committed("k") == 40
    assert t.in_flight_records == 0 and t.pending("k") == 0
    assert t.ack(1) is None  # a duplicate ack is harmless


@settings(max_examples=200)
@given(st.permutations(list(range(1, 21))))
def test_ack_tracker_any_order(order: list[int]) -> None:
    t = AckTracker()
    t.start("k", 0)
    for seq in range(1, 21):
        t.sent("k", seq, seq * 10, 1)
    acked: set[int] = set()
    for seq in order:
        t.ack(seq)
        acked.add(seq)
        prefix = 0
        while prefix + 1 in acked:
            prefix += 1
        assert t.committed("k") == prefix * 10


def test_checkpoint_store_roundtrip_atomic_and_private(tmp_path: Path) -> None:
    store = CheckpointStore.open(tmp_path / "data")
    state = FileState("k1", "celery", "/var/log/a.log", 1, 2, 10, "k1", 1234, "tail")
    store.put(state)
    assert store.save() and not store.save()
    path = tmp_path / "data" / "checkpoints.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    again = CheckpointStore.open(tmp_path / "data")
    loaded = again.get("k1")
    assert loaded is not None and loaded.offset == 1234 and loaded.path == "/var/log/a.log"
    assert not list(tmp_path.glob("data/.*.tmp"))


def test_checkpoint_store_corrupt_or_future_version_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        CheckpointStore.open(tmp_path)
    (tmp_path / "checkpoints.json").write_text('{"version": 99, "files": {}}')
    with pytest.raises(CheckpointError, match="version"):
        CheckpointStore.open(tmp_path)


def test_prune_forgets_only_old_finished_entries(tmp_path: Path) -> None:
    store = CheckpointStore.open(tmp_path)
    store.put(FileState("done", "i", "p", 1, 1, 1, "done", 5, finished=True))
    store.put(FileState("live", "i", "p", 1, 2, 1, "live", 5))
    assert store.prune(older_than=0) == []
    import time

    assert store.prune(older_than=time.time() + 1) == ["done"]
    assert store.get("live") is not None


def test_data_dir_lock_keeps_a_second_shipper_out(tmp_path: Path) -> None:
    import subprocess
    import sys

    from shipper.source import locked

    probe = (
        "import sys\nfrom shipper.source import locked\nfrom shipper.errors import ShipperError\n"
        "try:\n    with locked(sys.argv[1]):\n        print('got it')\n"
        "except ShipperError as e:\n    print(e)\n"
    )
    with locked(tmp_path):
        out = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert "another shipper is running" in out.stdout
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "got it"


def test_name_stems_cut_at_dots_and_dashes() -> None:
    from shipper.source.rotation import name_stems

    assert name_stems("app.log.2.gz") == ["app.log.2.gz", "app.log.2", "app.log", "app"]
    assert name_stems("app-20261124.log") == ["app-20261124.log", "app-20261124", "app"]
    assert name_stems("plain") == ["plain"]


def test_named_like_rotation_of() -> None:
    from shipper.source.rotation import named_like_rotation_of

    rotations = ("/l/app.log.1", "/l/app.log.2.gz", "/l/app.log-1124", "/l/app-1124.log", "/o/app.log.1")
    for rotated in rotations:
        assert named_like_rotation_of(rotated, "/l/app.log"), rotated
    for other in ("/l/b.log", "/l/application.log", "/l/ap.log"):
        assert not named_like_rotation_of(other, "/l/app.log"), other
    assert not named_like_rotation_of("/l/app.log.1", None)


def test_gz_length_and_prefix(tmp_path: Path) -> None:
    import gzip

    from shipper.source.fingerprint import gz_is_prefix, gz_length

    content = b"".join(b"line %d\n" % i for i in range(50_000))
    gz = tmp_path / "a.log.1.gz"
    gz.write_bytes(gzip.compress(content[:100_000]))
    assert gz_length(str(gz)) == 100_000

    def reader(data: bytes):  # type: ignore[no-untyped-def]
        return lambda start, n: data[start : start + n]

    assert gz_is_prefix(str(gz), reader(content)) is True  # a prefix of the longer original
    assert gz_is_prefix(str(gz), reader(content[:100_000])) is True
    assert gz_is_prefix(str(gz), reader(content[:99_999] + b"X")) is False
    cut = tmp_path / "being-written.gz"
    cut.write_bytes(gzip.compress(content)[:5000])
    assert gz_is_prefix(str(cut), reader(content)) is None  # incomplete: cannot tell yet
    assert gz_length(str(tmp_path / "missing.gz")) is None


def test_last_line_end(tmp_path: Path) -> None:
    from shipper.source.fingerprint import last_line_end

    f = tmp_path / "x.log"
    f.write_bytes(b"one\ntwo\nthr")
    assert last_line_end(str(f), 11) == 8
    assert last_line_end(str(f), 8) == 8
    f.write_bytes(b"no newline at all")
    assert last_line_end(str(f), 17) == 0


@pytest.mark.parametrize("name", ["app.log.2", "app.log.2.gz"])
def test_a_harvester_never_reads_a_file_renamed_in_between(tmp_path: Path, name: str) -> None:
    """logrotate renames files between the tailer's ``stat`` of a path and its ``open``: the
    harvester must refuse the file it finds there instead of reading another content under the
    identity of the one it was asked for (plain and ``.gz``: a .gz used to be opened by path)."""
    import gzip

    from shipper.config import InputConfig
    from shipper.source.fingerprint import Fingerprint, birth_time_ns
    from shipper.source.harvester import Harvester, Identity

    path = tmp_path / name
    older = tmp_path / (name.replace(".2", ".3"))
    content = [b"first generation\n", b"second generation\n"]
    for p, data in ((path, content[0]), (older, content[1])):
        p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    st_then = os.stat(path)
    os.rename(path, tmp_path / "moved")  # the rotation: another file takes the name
    os.rename(older, path)
    inp = InputConfig(id="t", paths=(str(path),))
    identity = Identity("k", Fingerprint(len(content[0]), "x"), "")
    with pytest.raises(FileNotFoundError):
        Harvester.start(inp, identity, str(path), None, st_then, 0, None, 0.0)
    h = Harvester.start(inp, identity, str(tmp_path / "moved"), None, st_then, 0, None, 0.0)
    assert h.birth == birth_time_ns(str(tmp_path / "moved"))
    h.close()
