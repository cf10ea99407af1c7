"""The tailer on real files in tmp_path: following, rotation, truncation, restarts, bad input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from shipper.source import NO_NEWLINE, TRUNCATED, Batch
from tests.support.tailing import FAST_WATCH, Received, drain, fast_input, make_tailer


def write(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def numbered(prefix: str, n: int, start: int = 0) -> list[bytes]:
    return [f"{prefix} {i}".encode() for i in range(start, start + n)]


def test_follows_appends_and_new_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "a.log", b"".join(x + b"\n" for x in numbered("a", 100)))
    write(logs / "skip.log.gz", b"not a live file\n")
    t = make_tailer(tmp_path / "data", [fast_input(str(logs / "*.log*"))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 100)
    write(logs / "a.log", b"".join(x + b"\n" for x in numbered("a", 50, 100)))
    write(logs / "b.log", b"b first\n")
    drain(t, got, lambda: len(got.by_id) == 151)
    assert got.lines() == Counter([*numbered("a", 150), b"b first"])
    assert got.deliveries == 151


def test_partial_last_line_waits_then_times_out(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    write(log, b"complete\nhalf")
    t = make_tailer(tmp_path / "data", [fast_input(str(log), partial_line_timeout=0.5)])
    seen: list[Batch] = []
    start = time.monotonic()
    while time.monotonic() - start < 0.3:
        seen += t.poll()
        time.sleep(0.02)
    assert [r.data for b in seen for r in b.records] == [b"complete"]
    write(log, b" done\n")  # the writer finished the line in time: still one line
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 1)
    assert list(got.by_id.values()) == [b"half done"]
    write(log, b"never finished")
    got2 = Received()
    records = []
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:
        for b in t.poll():
            records += b.records
        time.sleep(0.05)
    assert [(r.data, r.flags) for r in records] == [(b"never finished", NO_NEWLINE)]
    del got2


def test_oversized_line_is_cut_flagged_and_does_not_stall(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    write(log, b"before\n" + b"y" * 5_000_000 + b"\nafter\n")
    t = make_tailer(tmp_path / "data", [fast_input(str(log), max_line_bytes=1000)])
    records = []
    deadline = time.monotonic() + 10
    while len(records) < 3 and time.monotonic() < deadline:
        for b in t.poll():
            records += b.records
            t.ack(b.seq)
    assert [(len(r.data), r.flags) for r in records] == [(6, 0), (1000, TRUNCATED), (5, 0)]
    assert t.stats.truncated_lines == 1


def test_binary_and_invalid_utf8_lines_are_emitted_not_dropped(tmp_path: Path) -> None:
    log = tmp_path / "bin.log"
    payload = b"ok\n\xff\xfe\x00\x01 bad utf8\n\x00\x00\x00\nend\n"
    write(log, payload)
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 4)
    assert sorted(got.by_id.values()) == sorted(payload.split(b"\n")[:-1])


def test_multiline_records_use_the_rule_and_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    write(log, b"[1] start\nTraceback:\n  File x\nValueError\n[2] next\n  tail of 2\n")
    rule = {"test": lambda first, line: not line.startswith(b"[")}
    t = make_tailer(tmp_path / "data", [fast_input(str(log))], rules=rule)  # type: ignore[arg-type]
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 2)
    assert sorted(got.by_id.values()) == [
        b"[1] start\nTraceback:\n  File x\nValueError",
        b"[2] next\n  tail of 2",
    ]


def test_rename_rotation_reads_old_file_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, b"".join(x + b"\n" for x in numbered("old", 10)))
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 10)
    os.rename(log, tmp_path / "app.log.1")
    write(tmp_path / "app.log.1", b"late write to the renamed file\n")  # writer had not reopened yet
    write(log, b"new file line\n")
    drain(t, got, lambda: len(got.by_id) == 12)
    assert got.lines() == Counter([*numbered("old", 10), b"late write to the renamed file", b"new file line"])
    assert t.stats.rotations == 1


def test_copytruncate_finishes_unread_bytes_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, b"".join(x + b"\n" for x in numbered("a", 10)))
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 10)
    write(log, b"".join(x + b"\n" for x in numbered("a", 5, 10)))  # not read yet...
    shutil.copyfile(log, tmp_path / "app.log.1")  # ...when copytruncate copies
    os.truncate(log, 0)
    write(log, b"after truncate\n")
    drain(t, got, lambda: len(got.by_id) == 16)
    assert got.lines() == Counter([*numbered("a", 15), b"after truncate"])
    assert t.stats.truncations == 1 and t.stats.resumed_from_copy == 1


def test_truncated_and_refilled_past_position_is_detected_by_head(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, b"first generation\n")
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 1)
    with open(log, "wb") as f:  # truncate and write more than before, between two scans
        f.write(b"second generation, longer than the first\nmore\n")
    drain(t, got, lambda: len(got.by_id) == 3)
    assert got.lines() == Counter([b"first generation", b"second generation, longer than the first", b"more"])


def test_deleted_file_is_read_to_the_end_and_released(tmp_path: Path) -> None:
    log = tmp_path / "gone.log"
    write(log, b"".join(x + b"\n" for x in numbered("g", 1000)))
    watch = FAST_WATCH
    t = make_tailer(tmp_path / "data", [fast_input(str(log))], watch=watch)
    t.scan()
    log.unlink()  # deleted before we read a byte: the open descriptor still has it all
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 1000 and not t.files())
    assert got.lines() == Counter(numbered("g", 1000))
    assert t.stats.files_finished == 1


def test_restart_resumes_from_the_acknowledged_offset(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, b"".join(x + b"\n" for x in numbered("r", 100)))
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    # Read everything but acknowledge nothing: a crash now must re-send it all.
    drain(t, got, lambda: len(got.by_id) == 100, ack=False)
    t.save()
    t2 = make_tailer(tmp_path / "data", [fast_input(str(log))])
    again = Received()
    drain(t2, again, lambda: len(again.by_id) == 100)
    assert again.by_id == got.by_id  # same ids: Elasticsearch keeps one of each
    t2.save()
    write(log, b"one more\n")
    t3 = make_tailer(tmp_path / "data", [fast_input(str(log))])
    last = Received()
    drain(t3, last, lambda: len(last.by_id) == 1)
    assert list(last.by_id.values()) == [b"one more"]


def test_restart_finishes_a_file_rotated_and_compressed_while_down(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, b"".join(x + b"\n" for x in numbered("z", 50)))
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 50)
    t.save()
    t.close()
    # Shipper down: more lines, then rotation with compress (the rotated file exists only as .gz).
    write(log, b"".join(x + b"\n" for x in numbered("z", 25, 50)))
    with open(log, "rb") as src, gzip.open(tmp_path / "app.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    log.unlink()
    write(log, b"fresh\n")
    t2 = make_tailer(tmp_path / "data", [fast_input(str(log))])
    drain(t2, got, lambda: len(got.by_id) == 76)
    assert got.lines() == Counter([*numbered("z", 75), b"fresh"])
    assert t2.stats.resumed_from_copy == 1


def test_inode_reuse_is_not_mistaken_for_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, b"old content line that is long\n" * 3)
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 3)
    t.save()
    t.close()
    log.unlink()
    write(log, b"new\n")
    # The kernel may or may not hand the freed inode out again; make the checkpoint say it did.
    checkpoint = tmp_path / "data" / "checkpoints.json"
    doc = json.loads(checkpoint.read_text())
    (entry,) = doc["files"].values()
    entry["dev"], entry["ino"] = os.stat(log).st_dev, os.stat(log).st_ino
    checkpoint.write_text(json.dumps(doc))
    t2 = make_tailer(tmp_path / "data", [fast_input(str(log))])
    drain(t2, got, lambda: len(got.by_id) == 4)
    assert b"new" in got.by_id.values()
    # The old file had been read to its end: no byte is known lost (it is reported as gone, since
    # lines written while the shipper was down would be lost with it).
    assert t2.stats.bytes_lost == 0


def test_file_replaced_while_running_is_read_as_new(tmp_path: Path) -> None:
    """Deleted, released, and a new file at the same path (possibly on the same inode)."""
    log = tmp_path / "app.log"
    write(log, b"first file line\n")
    t = make_tailer(tmp_path / "data", [fast_input(str(log))])
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 1)
    log.unlink()
    drain(t, got, lambda: t.stats.files_finished == 1)
    write(log, b"second file line\n")
    drain(t, got, lambda: len(got.by_id) == 2)
    assert sorted(got.by_id.values()) == [b"first file line", b"second file line"]


def test_backpressure_bounds_unacknowledged_records(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    lines = [x.ljust(99, b".") for x in numbered("b", 20_000)]  # 100 bytes with the newline
    write(log, b"".join(x + b"\n" for x in lines))
    from dataclasses import replace

    watch = replace(FAST_WATCH, max_pending_records=1000)
    t = make_tailer(tmp_path / "data", [fast_input(str(log))], watch=watch)
    held: list[Batch] = []
    for _ in range(20):
        held += t.poll()
    in_flight = sum(len(b.records) for b in held)
    # Reading stops after the 256 KiB chunk that reaches the bound: at most ~2,600 lines over.
    assert 1000 <= in_flight <= 1000 + 256 * 1024 // 100
    assert t.backpressured
    got = Received()
    for b in held:
        got.add(b)
        t.ack(b.seq)
    drain(t, got, lambda: len(got.by_id) == 20_000)
    assert got.lines() == Counter(lines)


def test_open_files_stay_under_max_open_files_and_nothing_is_missed(tmp_path: Path) -> None:
    """More files than ``max_open_files``, all written every round: the least recently read are
    closed and reopened when they change, never more open than the limit, every line once."""
    from dataclasses import replace

    logs = tmp_path / "logs"
    logs.mkdir()
    files = [logs / f"f{i:02d}.log" for i in range(25)]
    for f in files:
        write(f, f"{f.stem} 0\n".encode())
    t = make_tailer(
        tmp_path / "data", [fast_input(str(logs / "*.log"))], watch=replace(FAST_WATCH, max_open_files=4)
    )
    got = Received()
    most_open = 0

    def poll_and_count() -> bool:
        nonlocal most_open
        most_open = max(most_open, sum(1 for h in t._harvesters.values() if h.fd is not None))
        return len(got.by_id) == expected

    expected = len(files)
    drain(t, got, poll_and_count)
    for n in range(1, 6):
        for f in files:
            write(f, f"{f.stem} {n}\n".encode())
        expected += len(files)
        drain(t, got, poll_and_count)
    assert got.lines() == Counter(f"{f.stem} {n}".encode() for f in files for n in range(6))
    assert got.deliveries == expected
    assert 0 < most_open <= 4


def test_written_while_closed_then_rotated_away_and_deleted_is_reported(tmp_path: Path) -> None:
    """An idle (closed) file is written to, then rotated twice and deleted before the shipper
    turns to it: the lines are gone, and that is said (a warning, files_lost), not silent."""
    from dataclasses import replace

    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    write(log, b"first\n")
    t = make_tailer(tmp_path / "data", [fast_input(str(log))], watch=replace(FAST_WATCH, close_inactive=0.2))
    got = Received()
    drain(t, got, lambda: len(got.by_id) == 1)
    deadline = time.monotonic() + 5
    while any(h.fd is not None for h in t._harvesters.values()):
        assert time.monotonic() < deadline, "the idle file was never closed"
        drain(t, got, lambda: True)
        time.sleep(0.05)
    write(log, b"second\nthird\n")
    os.rename(log, logs / "app.log.1")
    write(log, b"")
    os.unlink(logs / "app.log.1")
    drain(t, got, lambda: t.stats.files_lost == 1, timeout=10)
    assert got.lines() == Counter([b"first"])


def test_a_corrupt_gz_matched_by_a_glob_never_stops_the_tailer(tmp_path: Path) -> None:
    """Bytes flipped in the middle of a .gz make zlib raise its own error (not an OSError):
    the lines before the damage are shipped, the file ends there, the other files go on."""
    import random

    logs = tmp_path / "logs"
    logs.mkdir()
    data = b"".join(b"old %d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" % i for i in range(50_000))
    z = bytearray(gzip.compress(data))
    rng = random.Random(1)
    for _ in range(50):
        i = rng.randrange(len(z) // 2, len(z) - 8)
        z[i] = rng.randrange(256)
    (logs / "app.log.1.gz").write_bytes(bytes(z))
    write(logs / "app.log", b"live 1\n")
    t = make_tailer(tmp_path / "data", [fast_input(str(logs / "*.log*"))])
    got = Received()
    drain(t, got, lambda: b"live 1" in got.lines())
    write(logs / "app.log", b"live 2\n")
    drain(t, got, lambda: b"live 2" in got.lines())
    old = [line for line in got.lines() if line.startswith(b"old ")]
    assert 0 < len(old) < 50_000  # up to the damage, and each once
    assert got.deliveries == len(got.by_id)
