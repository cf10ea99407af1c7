"""The dead-letter file: never through a link, never a torn line, never an entry twice.

Disk full is simulated by patching os.write (a partial write, then ENOSPC) and, where this machine
lets us mount one, for real on a tiny tmpfs.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shipper.sink.deadletter as deadletter
from shipper.sink.bulk import BulkSender
from shipper.sink.deadletter import DeadLetterError, DeadLetterFile
from shipper.sink.encode import IndexNaming, Item, make_item
from tests.support.shipper_proc import REPO, write_config


def item(n: int, size: int = 10) -> Item:
    doc = {"@timestamp": "2026-11-24T10:00:00.000Z", "message": f"doc {n} " + "x" * size}
    return make_item(IndexNaming("data_stream"), f"k-{n:x}", "logs-celery.worker-default", doc, n, None)


def entries(*ns: int, size: int = 10) -> list[tuple[Item, int, Any, str]]:
    return [
        (item(n, size), 400, {"type": "mapper_parsing_exception"}, "refused by Elasticsearch") for n in ns
    ]


def lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a torn last line"
    return [json.loads(line) for line in data.splitlines()]


def test_symlinked_dead_letter_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    link = tmp_path / "data" / "dead-letter.ndjson"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(DeadLetterError) as info:
        DeadLetterFile(str(link))
    assert "symbolic link" in str(info.value) and "\n" not in str(info.value)
    assert target.read_text() == "keep me\n"


def test_hard_link_fifo_and_foreign_owner_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("")
    os.link(other, tmp_path / "linked")
    with pytest.raises(DeadLetterError, match="hard links"):
        DeadLetterFile(str(tmp_path / "linked"))
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(DeadLetterError, match="not a regular file"):
        DeadLetterFile(str(tmp_path / "fifo"))  # and it does not block waiting for a reader
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.write_text("")
        os.chown(foreign, 12345, 12345)
        with pytest.raises(DeadLetterError, match="uid 12345"):
            DeadLetterFile(str(foreign))


def test_shipper_run_refuses_a_symlinked_dead_letter_file_with_one_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.json").write_text('{"message": "x"}\n')
    cfg = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        f'  - id: app\n    paths: ["{logs}/*.json"]\n    parser: celery_json\n',
        es_extra="index_mode: daily_index",
    )
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    cfg.data_dir.mkdir(mode=0o700)
    (cfg.data_dir / "dead-letter.ndjson").symlink_to(target)
    out = subprocess.run(
        [sys.executable, "-m", "shipper", "run", "-c", str(cfg.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("shipper: error:")]
    assert len(errors) == 1 and "symbolic link" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert target.read_text() == "keep me\n"


class DiskFull:
    """os.write that writes ``room`` bytes in total, then fails with ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.real = os.write

    def __call__(self, fd: int, data: Any) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.real(fd, bytes(data[: self.room]))
        self.room -= n
        return n


def test_disk_full_leaves_no_torn_line_and_a_retry_writes_each_entry_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dead-letter.ndjson"
    dead = DeadLetterFile(str(path))
    assert dead.write(entries(1)) == 1
    before = path.read_bytes()
    monkeypatch.setattr(deadletter.os, "write", DiskFull(room=25))
    with pytest.raises(DeadLetterError, match="No space left"):
        dead.write(entries(2, 3))
    assert path.read_bytes() == before  # cut back: no half entry
    monkeypatch.undo()
    assert dead.write(entries(2, 3)) == 2
    assert dead.write(entries(4)) == 1
    assert [e["_id"] for e in lines(path)] == ["k-1", "k-2", "k-3", "k-4"]
    dead.close()


def test_a_torn_end_from_a_crash_is_cut_before_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "dead-letter.ndjson"
    dead = DeadLetterFile(str(path))
    dead.write(entries(1))
    with open(path, "ab") as f:
        f.write(b'{"@timestamp":"2026-11-24T10:00:00.000Z","_id":"k-2","docu')  # kill -9 mid-write
    dead.write(entries(2))
    assert [e["_id"] for e in lines(path)] == ["k-1", "k-2"]


def test_sender_keeps_refused_documents_unacknowledged_until_they_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full while dead-lettering: the indexed documents are acknowledged, the refused ones
    are not, and the write is retried (not the request); once there is room, each entry is
    written once and then acknowledged."""
    path = tmp_path / "dead-letter.ndjson"
    dead = DeadLetterFile(str(path))
    full = DiskFull(room=0)
    monkeypatch.setattr(deadletter.os, "write", full)
    resolved: list[int] = []
    requests: list[bytes] = []

    def transport(body: bytes) -> tuple[Any, int]:
        requests.append(body)
        items = [{"create": {"status": 201}}, {"create": {"status": 400, "error": {"type": "mapper"}}}]
        return {"errors": True, "items": items}, len(body)

    def resolve(items: list[Item]) -> None:
        resolved.extend(i.batch_seq for i in items)
        if len(resolved) == 1:
            assert not path.read_bytes()

    sender = BulkSender(transport, dead, resolve, threading.Event(), 0.01, 0.02)
    done = threading.Event()
    threading.Thread(target=lambda: (sender.send([item(1), item(2)]), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # retrying the write
    assert resolved == [1] and len(requests) == 1
    assert sender.stats.dead_letter_error and "No space left" in sender.stats.dead_letter_error
    full.room = 10**9
    assert done.wait(5)
    assert resolved == [1, 2] and len(requests) == 1
    assert [e["_id"] for e in lines(path)] == ["k-2"]
    assert sender.stats.dead_lettered == 1 and sender.stats.dead_letter_error == ""


def test_stopping_while_the_disk_is_full_acknowledges_nothing_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = DeadLetterFile(str(tmp_path / "dead-letter.ndjson"))
    monkeypatch.setattr(deadletter.os, "write", DiskFull(room=0))
    stop = threading.Event()
    resolved: list[int] = []

    def transport(body: bytes) -> tuple[Any, int]:
        stop.set()
        return {"errors": True, "items": [{"create": {"status": 400}}]}, 1

    sender = BulkSender(transport, dead, lambda items: resolved.extend(i.batch_seq for i in items), stop)
    assert sender.send([item(1)]) is False
    assert resolved == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_disk_full_on_a_tiny_tmpfs(tiny_tmpfs: Path) -> None:
    path = tiny_tmpfs / "dead-letter.ndjson"
    dead = DeadLetterFile(str(path))
    dead.write(entries(1))
    filler = tiny_tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    before = path.read_bytes()
    with pytest.raises(DeadLetterError, match="No space left"):
        dead.write(entries(*range(2, 40), size=2000))
    assert path.read_bytes() == before
    filler.unlink()
    assert dead.write(entries(*range(2, 10), size=2000)) == 8
    assert [e["_id"] for e in lines(path)] == [f"k-{n:x}" for n in range(1, 10)]
    dead.close()
