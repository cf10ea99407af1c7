"""Attacks on "follows log files through every logrotate mode ... exactly once" with `olddir`.

logrotate's ``olddir`` moves the rotated file into another directory (``old/app.log.1``,
optionally compressed to ``old/app.log.1.gz``). The content is still on disk, so nothing here is
"loss no shipper can prevent": every line must end in Elasticsearch exactly once.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.components import require_binary
from tests.support.docs import get
from tests.support.es import all_docs
from tests.support.shipper_proc import ShipperConfigFile, ShipperProcess, write_config


def _line(tag: str, i: int) -> str:
    return json.dumps({"message": f"{tag} {i}", "log": {"level": "info"}}) + "\n"


def _append(path: Path, tag: str, n: int, written: list[str]) -> None:
    lines = [_line(tag, i) for i in range(n)]
    with open(path, "a") as fh:
        fh.write("".join(lines))
    written.extend(line.rstrip("\n") for line in lines)


def _originals(es_url: str, cfg: ShipperConfigFile) -> Counter[str]:
    docs: dict[str, dict[str, Any]] = all_docs(es_url, f"logs-*-{cfg.namespace}*")
    return Counter(str(get(d, "event.original")) for d in docs.values())


def _wait_docs(es_url: str, cfg: ShipperConfigFile, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while sum(_originals(es_url, cfg).values()) < n:
        assert time.monotonic() < deadline, f"fewer than {n} documents after {timeout} s"
        time.sleep(0.3)


def _lost_bytes(log: Path) -> int:
    """bytes_lost summed over every 'shipper stopped' line of the shipper's log."""
    total = 0
    for raw in log.read_text(errors="replace").splitlines():
        if '"shipper stopped"' in raw:
            total += int(json.loads(raw).get("tailer", {}).get("bytes_lost", 0))
    return total


def _run(
    tmp_path: Path, es_url: str, rotate_opts: str, globs: list[str], kill: bool
) -> tuple[list[str], Counter[str], ShipperProcess]:
    logrotate = require_binary("logrotate", "apt-get install logrotate")
    logs = tmp_path / "logs"
    (logs / "old").mkdir(parents=True)
    app = logs / "app.log"
    written: list[str] = []
    _append(app, "before", 100, written)
    paths = json.dumps([str(logs / g) for g in globs])
    cfg = write_config(
        tmp_path,
        es_url,
        f"  - id: app\n    paths: {paths}\n    parser: celery_json\n    include_original: true\n",
    )
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{app} {{\n  {rotate_opts}\n  olddir old\n  rotate 5\n  missingok\n}}\n")
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        _wait_docs(es_url, cfg, 100)
        time.sleep(1.5)  # acknowledged and checkpointed; the file goes idle (close_inactive: 1)
        if kill:
            shipper.kill()
        # A burst, then the rotation (a daily logrotate run right after the night's last records).
        _append(app, "burst", 50, written)
        subprocess.run([logrotate, "-f", "-s", str(tmp_path / "lr.state"), str(conf)], check=True)
        _append(app, "after", 20, written)
        if kill:
            shipper.start()
            shipper.wait_started()
        # The full listing runs at least every 10 s: give it that and more.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(_originals(es_url, cfg).values()) < len(written):
            time.sleep(0.5)
        time.sleep(2)  # anything still coming (duplicates) arrives
        assert shipper.stop() == 0, shipper.tail()
    finally:
        shipper.ensure_dead()
    return written, _originals(es_url, cfg), shipper


def _verdict(written: list[str], got: Counter[str]) -> tuple[list[str], dict[str, int]]:
    want = Counter(written)
    missing = [line for line in want if got[line] < want[line]]
    extra = {line: n - want[line] for line, n in got.items() if n > want[line]}
    return missing, extra


def test_olddir_rotation_of_an_idle_file_is_finished_from_olddir(tmp_path: Path, es_url: str) -> None:
    """Shipper running. app.log idle (closed after close_inactive), 50 lines appended and at once
    moved to old/app.log.1 by `logrotate` (create + olddir). The 50 lines sit in old/app.log.1 on
    disk. Observed on 1a2c1a6: 120 of 170 documents, the 50 burst lines missing, nothing reported
    (files_lost 0, bytes_lost 0, no warning)."""
    written, got, shipper = _run(tmp_path, es_url, "create", ["app.log"], kill=False)
    missing, extra = _verdict(written, got)
    assert not extra, f"duplicates: {len(extra)}"
    assert not missing, (
        f"{len(missing)} of {len(written)} lines never indexed although old/app.log.1 holds them "
        f"(bytes reported lost: {_lost_bytes(shipper.log)}), e.g. {missing[:2]}"
    )


def test_olddir_compressed_while_down_is_finished_from_its_gz(tmp_path: Path, es_url: str) -> None:
    """kill -9; 50 lines appended; `logrotate` create + compress + olddir (old/app.log.1.gz);
    restart. README: "A file rotated and compressed while the shipper was down is finished from
    its .gz". Observed on 1a2c1a6: 120 of 170 documents; the shipper warns that the file was
    "rotated away and deleted while the shipper was down" (it is in old/app.log.1.gz) with
    "0 unread bytes known to be gone" (bytes_lost 0)."""
    written, got, shipper = _run(tmp_path, es_url, "create\n  compress", ["app.log"], kill=True)
    missing, extra = _verdict(written, got)
    assert not extra, f"duplicates: {len(extra)}"
    assert not missing, (
        f"{len(missing)} of {len(written)} lines never indexed although old/app.log.1.gz holds them "
        f"(bytes reported lost: {_lost_bytes(shipper.log)}), e.g. {missing[:2]}"
    )


def test_olddir_gz_matched_by_a_glob_is_not_read_again(tmp_path: Path, es_url: str) -> None:
    """Globs `app.log` and `old/app.log*` (README: "Globs may match compressed and rotated names:
    they are recognised, never re-read"). Shipper running; burst; create + compress + olddir.
    Observed on 1a2c1a6: 270 documents for 170 lines: old/app.log.1.gz is read from its start as a
    new file, the 100 lines already indexed are indexed a second time under new ids."""
    written, got, _ = _run(tmp_path, es_url, "create\n  compress", ["app.log", "old/app.log*"], kill=False)
    missing, extra = _verdict(written, got)
    assert not missing, f"{len(missing)} lines missing, e.g. {missing[:2]}"
    assert not extra, (
        f"{sum(extra.values())} duplicate documents for {len(written)} lines, e.g. {list(extra.items())[:2]}"
    )
