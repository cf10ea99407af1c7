"""File identity and document ids, attacked end to end: the REAL ``shipper run``, the REAL
logrotate and a REAL Elasticsearch-compatible server. Every line carries a unique marker and is
counted in what the server holds: 0 lost, 0 duplicated, and loss no shipper can prevent reported.

One test per way the field broke the promise: files with the same first lines, a rewrite in place
with the same head, two hosts with byte-identical files, a glob over compressed rotations, a
symlinked path rotated while the shipper was down, more rotations while down than are kept, a
record closed by a timeout followed by ``kill -9``, and CRLF line ends.
"""

from __future__ import annotations

import gzip
import shutil
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.components import free_port, require_binary
from tests.support.es import all_docs
from tests.support.shipper_proc import ShipperProcess, write_config
from tests.support.tailing import logrotate_conf, run_logrotate

pytestmark = pytest.mark.slow

BANNER = b"=== worker starting, no timestamp on this line ===\n"


def lines(prefix: str, n: int, start: int = 0) -> list[bytes]:
    return [f"{prefix} {i:05d} {'x' * (i % 50)}".encode() for i in range(start, start + n)]


def write(path: Path, data: bytes, mode: str = "ab") -> None:
    with open(path, mode) as f:
        f.write(data)


def joined(items: list[bytes], end: bytes = b"\n") -> bytes:
    return b"".join(x + end for x in items)


def messages(es_url: str, namespace: str) -> Counter[str]:
    return Counter(str(d.get("message")) for d in all_docs(es_url, f"logs-*-{namespace}*").values())


def wait_for(pred: Callable[[], bool], what: str, tail: Callable[[], str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{tail()}"
        time.sleep(0.3)


def settle(es_url: str, namespace: str, expected: Counter[str], proc: ShipperProcess) -> Counter[str]:
    """Wait until the server holds at least what is expected, then a little more: a duplicate
    arriving late must be seen."""
    wait_for(
        lambda: not (expected - messages(es_url, namespace)),
        f"{sum(expected.values())} documents",
        lambda: f"missing {list((expected - messages(es_url, namespace)).items())[:5]}\n{proc.tail()}",
    )
    time.sleep(1.5)
    return messages(es_url, namespace)


def shipper(tmp: Path, es_url: str, inputs: str, **kw: str) -> tuple[ShipperProcess, str, Path]:
    cfg = write_config(tmp, es_url, inputs, **kw)  # type: ignore[arg-type]
    proc = ShipperProcess(cfg.path, tmp / "shipper.log")
    return proc, cfg.namespace, cfg.data_dir


def auto_input(pattern: str | Path, extra: str = "") -> str:
    return f'  - id: app\n    paths: ["{pattern}"]\n    parser: auto\n{extra}'


def text(items: list[bytes]) -> Counter[str]:
    return Counter(x.decode() for x in items)


def test_files_with_the_same_first_lines_are_all_read(tmp_path: Path, es_url: str) -> None:
    """Two files with the same banner, one of them nothing but the banner, one with CRLF ends."""
    logs = tmp_path / "logs"
    logs.mkdir()
    a, b = lines("a", 300), lines("b", 300)
    crlf = lines("c", 40)
    write(logs / "a.log", BANNER + joined(a))
    write(logs / "b.log", BANNER + joined(b))
    write(logs / "short.log", BANNER)
    write(logs / "crlf.log", BANNER.replace(b"\n", b"\r\n") + joined(crlf, b"\r\n"))
    proc, ns, _ = shipper(tmp_path, es_url, auto_input(logs / "*.log"))
    proc.start()
    try:
        banner = BANNER.decode().rstrip("\n")
        expected = text(a + b + crlf) + Counter({banner: 4})
        got = settle(es_url, ns, expected, proc)
        assert got == expected, (got - expected, expected - got)
        assert not any("\r" in m for m in got)
        assert proc.stop() == 0
    finally:
        proc.ensure_dead()


def test_rewrite_in_place_with_the_same_head_is_read_again(tmp_path: Path, es_url: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    # The same first kilobytes in both generations: the head alone cannot tell them apart.
    common = lines("start-up", 40)
    first, second = lines("first", 100), lines("second", 150)
    assert len(BANNER + joined(common)) > 1024
    write(log, BANNER + joined(common + first))
    proc, ns, _ = shipper(tmp_path, es_url, auto_input(log))
    proc.start()
    try:
        banner = BANNER.decode().rstrip("\n")
        settle(es_url, ns, text(common + first) + Counter({banner: 1}), proc)
        # Truncated and written again, same head, in ONE write that ends past the old size.
        content = BANNER + joined(common + second)
        with open(log, "r+b") as f:
            f.truncate(0)
            f.write(content)
        expected = text(common + common + first + second) + Counter({banner: 2})
        got = settle(es_url, ns, expected, proc)
        assert got == expected, (got - expected, expected - got)
        assert proc.stop() == 0
    finally:
        proc.ensure_dead()


def test_two_hosts_with_byte_identical_files_both_arrive(tmp_path: Path, es_url: str) -> None:
    """Two shippers (two hosts, two data dirs), byte-identical files, one index: nothing may be
    mistaken for the other host's document."""
    same = lines("same", 200)
    procs = []
    namespace = None
    try:
        for host in ("host-a", "host-b"):
            root = tmp_path / host
            (root / "logs").mkdir(parents=True)
            write(root / "logs" / "app.log", BANNER + joined(same))
            proc, ns, _ = shipper(
                root, es_url, auto_input(root / "logs" / "app.log"), extra=f"hostname: {host}"
            )
            if namespace is None:
                namespace = ns
            else:  # the same index for both
                cfg = root / "shipper.yml"
                cfg.write_text(cfg.read_text().replace(f"namespace: {ns}", f"namespace: {namespace}"))
            proc.start()
            procs.append(proc)
        assert namespace is not None
        banner = BANNER.decode().rstrip("\n")
        expected = Counter({k: 2 * v for k, v in (text(same) + Counter({banner: 1})).items()})
        got = settle(es_url, namespace, expected, procs[0])
        assert got == expected, (got - expected, expected - got)
        hosts = Counter(d["host"]["hostname"] for d in all_docs(es_url, f"logs-*-{namespace}*").values())
        assert hosts == {"host-a": 201, "host-b": 201}
        for proc in procs:
            assert proc.stop() == 0
    finally:
        for proc in procs:
            proc.ensure_dead()


def test_glob_over_compressed_rotations_never_reads_twice(tmp_path: Path, es_url: str) -> None:
    """``*.log*`` with nothing excluded, the real logrotate compressing while lines are written:
    no line twice, and nothing more arrives while everything is idle."""
    binary = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    conf = logrotate_conf(tmp_path, log, "create", compress=True, delaycompress=False)
    proc, ns, _ = shipper(tmp_path, es_url, auto_input(logs / "app.log*", "    exclude: []\n"))
    proc.start()
    written: list[bytes] = []
    try:
        for round_ in range(5):
            batch = lines(f"r{round_}", 200)
            write(log, BANNER + joined(batch))
            written += batch
            time.sleep(0.5)
            run_logrotate(binary, conf, tmp_path / "state")
        banner = BANNER.decode().rstrip("\n")
        expected = text(written) + Counter({banner: 5})
        got = settle(es_url, ns, expected, proc)
        time.sleep(3)  # idle: a re-read of a .gz would show up now
        got = messages(es_url, ns)
        assert got == expected, (got - expected, expected - got)
        assert len(list(logs.glob("*.gz"))) == 5
        assert proc.stop() == 0
    finally:
        proc.ensure_dead()


def test_symlinked_path_rotated_while_down(tmp_path: Path, es_url: str) -> None:
    """The watched path is a symlink; its target is rotated and compressed while the shipper is
    down: the unread end is finished from the .gz next to the TARGET."""
    target, links = tmp_path / "target", tmp_path / "links"
    target.mkdir()
    links.mkdir()
    (links / "app.log").symlink_to(target / "app.log")
    before, during, after = lines("before", 100), lines("during", 100), lines("after", 50)
    write(target / "app.log", BANNER + joined(before))
    proc, ns, _ = shipper(tmp_path, es_url, auto_input(links / "*.log"))
    proc.start()
    try:
        banner = BANNER.decode().rstrip("\n")
        settle(es_url, ns, text(before) + Counter({banner: 1}), proc)
        assert proc.stop() == 0
        write(target / "app.log", joined(during))
        with open(target / "app.log", "rb") as src, gzip.open(target / "app.log.1.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        (target / "app.log").unlink()
        write(target / "app.log", b"new generation\n" + joined(after))
        proc.start()
        expected = text(before + during + after) + Counter({banner: 1, "new generation": 1})
        got = settle(es_url, ns, expected, proc)
        assert got == expected, (got - expected, expected - got)
        assert proc.stop() == 0
    finally:
        proc.ensure_dead()


def test_loss_while_down_is_reported(tmp_path: Path, es_url: str) -> None:
    """More rotations while down than logrotate keeps: the lines are gone (nobody can ship them),
    and the shipper says so: a warning naming the file, files_lost and bytes_lost."""
    binary = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    conf = logrotate_conf(tmp_path, log, "create", compress=False, delaycompress=False, rotate=1)
    port = free_port()
    proc, ns, _ = shipper(tmp_path, es_url, auto_input(log), metrics=f"listen: 127.0.0.1:{port}")
    write(log, BANNER + joined(lines("kept", 50)))
    proc.start()
    try:
        settle(es_url, ns, text(lines("kept", 50)), proc)
        assert proc.stop() == 0
        write(log, joined(lines("gone", 30)))
        for i in range(3):  # rotate 1: after three rotations the file that was read is deleted
            run_logrotate(binary, conf, tmp_path / "state")
            write(log, f"generation {i}\n".encode())
        proc.start()
        proc.wait_started()
        wait_for(lambda: b"known to be gone" in proc.log.read_bytes(), "a loss warning", proc.tail)
        warning = next(line for line in proc.log.read_text().splitlines() if "known to be gone" in line)
        assert str(log) in warning
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert "shipper_files_lost_total 1.0" in metrics
        assert "shipper_bytes_lost_total" in metrics
        # The live file and the rotated one never seen are read; the deleted ones are gone.
        got = settle(es_url, ns, Counter({"generation 1": 1, "generation 2": 1}), proc)
        assert got["generation 0"] == 0 and not any(m.startswith("gone") for m in got)
        assert proc.stop() == 0
    finally:
        proc.ensure_dead()


def test_record_closed_by_timeout_keeps_its_boundary_across_kill_9(tmp_path: Path, es_url: str) -> None:
    """A last line without newline is shipped after partial_line_timeout; the shipper is killed
    before any periodic checkpoint; the writer then finishes the line. After the restart the
    shipped part must be re-read as the same record (409), and the rest must arrive: no tail lost,
    nothing twice."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    inp = auto_input(log, "    partial_line_timeout: 0.3\n")
    proc, ns, _ = shipper(tmp_path, es_url, inp)
    cfg = proc.config
    cfg.write_text(cfg.read_text().replace("checkpoint_interval: 0.2", "checkpoint_interval: 3600"))
    write(log, BANNER + b"complete line\nhalf of a line")
    proc.start()
    try:
        banner = BANNER.decode().rstrip("\n")
        settle(es_url, ns, Counter({banner: 1, "complete line": 1, "half of a line": 1}), proc)
        proc.kill()  # the worst window: shipped and acknowledged, no periodic checkpoint since
        write(log, b" and its end\nnext line\n")
        proc.start()
        expected = Counter(
            {banner: 1, "complete line": 1, "half of a line": 1, " and its end": 1, "next line": 1}
        )
        got = settle(es_url, ns, expected, proc)
        assert got == expected, (got - expected, expected - got)
        docs = all_docs(es_url, f"logs-*-{ns}*").values()
        half = next(d for d in docs if d["message"] == "half of a line")
        assert "partial_line" in half["tags"]
        assert proc.stop() == 0
    finally:
        proc.ensure_dead()
