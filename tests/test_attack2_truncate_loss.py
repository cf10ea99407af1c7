"""Attacks on "Loss no shipper can prevent is reported" for a file truncated with no copy.

README: "When a file with unread data is gone before it could be read (more rotations while the
shipper was down than logrotate keeps, a file truncated with no copy, an idle file written to and
then rotated twice within a moment), the shipper logs a warning naming the file and the bytes
known to be lost (or that their number is unknown), and counts shipper_files_lost_total and
shipper_bytes_lost_total."

Here lines are appended to a file and the file is then truncated (``> app.log``, no copy) and
written again before the shipper read them. The lines are gone: nothing can ship them, but the loss
must be reported, as it is for a file rotated away and deleted while the shipper was down (that
case logs "lines of unknown size known to be gone" and counts files_lost 1).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.support import attack2
from tests.support.shipper_proc import ShipperProcess, write_config


def _append(path: Path, tag: str, n: int, written: list[str]) -> None:
    lines = [json.dumps({"message": f"{tag} {i}", "log": {"level": "info"}}) for i in range(n)]
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))
    written.extend(lines)


def _run(tmp_path: Path, es_url: str, kill: bool) -> tuple[list[str], Counter[str], ShipperProcess]:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    written: list[str] = []
    _append(app, "g0", 50, written)
    cfg = write_config(
        tmp_path,
        es_url,
        f'  - id: app\n    paths: ["{app}"]\n    parser: celery_json\n    include_original: true\n',
    )
    shipper = ShipperProcess(cfg.path, tmp_path / "shipper.log")
    try:
        shipper.setup()
        shipper.start()
        shipper.wait_started()
        attack2.settle(es_url, cfg, 50, timeout=15, quiet=1.5)  # acknowledged, checkpointed, idle
        if kill:
            shipper.kill()
        _append(app, "g1", 200, written)
        app.write_text("")  # truncated with no copy: the 200 lines are gone
        _append(app, "g2", 10, written)
        if kill:
            shipper.start()
            shipper.wait_started()
        attack2.settle(es_url, cfg, len(written), timeout=8, quiet=2)
        assert shipper.stop() == 0, shipper.tail()
    finally:
        shipper.ensure_dead()
    return written, attack2.originals(es_url, cfg), shipper


def _check(written: list[str], got: Counter[str], shipper: ShipperProcess) -> None:
    want = Counter(written)
    missing = [line for line in want if got[line] < want[line]]
    assert not [line for line, n in got.items() if n > want[line]], "duplicates"
    stats = attack2.stopped_stats(shipper.log)
    lost_warnings = [w for w in attack2.warnings(shipper.log) if "gone" in w or "lost" in w]
    assert not missing or (stats.get("files_lost", 0) >= 1 and lost_warnings), (
        f"{len(missing)} of {len(written)} lines ({sum(len(m) + 1 for m in missing)} bytes) neither "
        f"indexed nor reported: {stats}, {len(lost_warnings)} loss warnings, e.g. {missing[:2]}"
    )


def test_idle_file_written_then_truncated_reports_the_loss(tmp_path: Path, es_url: str) -> None:
    """Shipper running; app.log (50 lines shipped) idle and closed after close_inactive; 200 lines
    appended, at once the file is truncated and 10 new lines written. Observed on c330169: 60 of
    260 lines indexed, the 200 appended lines (9,490 bytes) missing, files_lost 0, bytes_lost 0, no warning.
    Deterministic (3/3 runs)."""
    _check(*_run(tmp_path, es_url, kill=False))


def test_file_truncated_while_down_reports_the_loss(tmp_path: Path, es_url: str) -> None:
    """kill -9 after 50 lines are shipped; 200 lines appended; the file truncated and 10 new lines
    written; restart. The checkpoint says 50 lines were read, the file is now shorter: it was
    truncated while the shipper was down, whatever it held past the checkpoint is gone (for a file
    rotated away and deleted while down the shipper says "lines of unknown size known to be gone").
    Observed on c330169: 60 of 260 lines indexed, files_lost 0, bytes_lost 0, no warning.
    Deterministic (3/3 runs)."""
    _check(*_run(tmp_path, es_url, kill=True))
