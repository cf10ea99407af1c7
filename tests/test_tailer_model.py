"""Hypothesis state machine: random write / rotate / truncate / compress / ack / crash sequences
against a model (every line written, exactly once after id de-duplication)."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shipper.config import InputConfig
from shipper.source import Batch, CheckpointStore, Tailer
from tests.support.tailing import FAST_WATCH, Received


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TailerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tailer-model-"))
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.log = self.logs / "app.log"
        self.clock = FakeClock()
        self.written: list[bytes] = []
        self.counter = 0
        self.rotation = 0
        self.partial: bytes | None = None
        self.received = Received()
        self.held: list[Batch] = []
        self.rng = random.Random(0)
        self.input = InputConfig(
            id="m", paths=(str(self.logs / "*.log"),), partial_line_timeout=1e6, multiline_timeout=1e6
        )
        self.watch = replace(FAST_WATCH, close_inactive=0.5, checkpoint_interval=0.3)
        self.tailer = self._new_tailer()

    def _new_tailer(self) -> Tailer:
        return Tailer([self.input], CheckpointStore.open(self.dir / "data"), self.watch, clock=self.clock)

    def teardown(self) -> None:
        self.tailer.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the world

    @rule(n=st.integers(min_value=1, max_value=40), partial=st.booleans())
    def write(self, n: int, partial: bool) -> None:
        with open(self.log, "ab") as f:
            if self.partial is not None:
                f.write(b" completed\n")
                self.written.append(self.partial + b" completed")
                self.partial = None
            for _ in range(n):
                self.counter += 1
                line = f"line {self.counter:06d} {'p' * (self.counter % 37)}".encode()
                f.write(line + b"\n")
                self.written.append(line)
            if partial:
                self.counter += 1
                self.partial = f"half {self.counter:06d}".encode()
                f.write(self.partial)

    @precondition(lambda self: self.log.exists() and self.partial is None)
    @rule()
    def rotate_create(self) -> None:
        self.rotation += 1
        os.rename(self.log, self.logs / f"app.log.{self.rotation}")

    @precondition(lambda self: self.log.exists() and self.partial is None)
    @rule()
    def rotate_copytruncate(self) -> None:
        self.rotation += 1
        shutil.copyfile(self.log, self.logs / f"app.log.{self.rotation}")
        os.truncate(self.log, 0)

    @precondition(lambda self: any(p.suffix != ".gz" and p.name != "app.log" for p in self.logs.iterdir()))
    @rule(data=st.data())
    def compress_a_rotated_file(self, data: st.DataObject) -> None:
        plain = sorted(p for p in self.logs.iterdir() if p.suffix != ".gz" and p.name != "app.log")
        victim = data.draw(st.sampled_from(plain))
        with open(victim, "rb") as src, gzip.open(f"{victim}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        victim.unlink()

    # -- the shipper

    @rule(turns=st.integers(min_value=1, max_value=5), how=st.sampled_from(["all", "none", "shuffled"]))
    def poll(self, turns: int, how: str) -> None:
        for _ in range(turns):
            self.clock.now += 0.2
            batches = self.tailer.poll()
            for b in batches:
                self.received.add(b)
            self.held += batches
            if how == "all":
                for b in self.held:
                    self.tailer.ack(b.seq)
                self.held = []
            elif how == "shuffled" and self.held:
                self.rng.shuffle(self.held)
                k = self.rng.randint(0, len(self.held))
                for b in self.held[:k]:
                    self.tailer.ack(b.seq)
                self.held = self.held[k:]

    @rule()
    def crash(self) -> None:
        """kill -9: no final save; whatever was in flight is lost and must be re-read."""
        for h in self.tailer._harvesters.values():
            h.close()
        self.held = []
        self.tailer = self._new_tailer()

    @rule()
    def graceful_restart(self) -> None:
        self.tailer.close()
        self.held = []
        self.tailer = self._new_tailer()

    @invariant()
    def nothing_invented(self) -> None:
        assert not self.received.conflicts
        written = set(self.written) | ({self.partial} if self.partial else set())
        for data in self.received.by_id.values():
            assert data in written, data

    def check_final(self) -> None:
        if self.partial is not None:
            with open(self.log, "ab") as f:
                f.write(b" completed\n")
            self.written.append(self.partial + b" completed")
            self.partial = None
        expected = Counter(self.written)
        for _ in range(400):
            self.clock.now += 0.2
            for b in self.tailer.poll():
                self.received.add(b)
                self.tailer.ack(b.seq)
            for b in self.held:
                self.tailer.ack(b.seq)
            self.held = []
            if self.received.lines() == expected:
                break
        assert self.received.lines() == expected
        assert self.tailer.stats.files_lost == 0


class TestTailerModel(TailerModel.TestCase):  # type: ignore[name-defined]
    settings = settings(
        max_examples=int(os.environ.get("MODEL_EXAMPLES", "60")), stateful_step_count=25, deadline=None
    )


# Run the final check at the end of every example.
_original_teardown = TailerModel.teardown


def _teardown(self: TailerModel) -> None:
    try:
        self.check_final()
    finally:
        _original_teardown(self)


TailerModel.teardown = _teardown  # type: ignore[method-assign]
