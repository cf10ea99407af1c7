"""Parsers on golden samples captured from a REAL Celery 5.7 worker and RabbitMQ 3.10 node
(tests/samples/, see scripts/capture_samples.py), on documented older formats, and on
arbitrary bytes (hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.config import InputConfig
from shipper.parse import PARSERS, InputParsing, ParseContext, TimeConverter, build_document
from shipper.source.lines import LineSplitter
from shipper.source.multiline import Grouper
from shipper.source.records import NO_NEWLINE, TRUNCATED, Record, SourceRef
from tests.support.docs import get

SAMPLES = Path(__file__).parent / "samples"
INGEST = "2030-01-01T00:00:00.000Z"


def records_of(data: bytes, parser: str, max_bytes: int = 1 << 20) -> list[Record]:
    splitter = LineSplitter(0, max_bytes)
    grouper = Grouper(PARSERS[parser].continues, max_bytes)
    out: list[Record] = []
    grouper.feed(splitter.feed(data), out)
    tail = splitter.take_partial()
    if tail is not None:
        grouper.feed([tail], out)
    grouper.flush(out)
    return out


def documents(data: bytes, parser: str, timezone: str = "UTC", **kw: Any) -> list[dict[str, Any]]:
    inp = InputConfig(id="t", paths=("x",), parser=parser, timezone=timezone, **kw)  # type: ignore[arg-type]
    ip = InputParsing.from_config(inp, hostname="testhost")
    ctx = ParseContext(TimeConverter(timezone), INGEST)
    src = SourceRef("t", "k", "/var/log/test.log")
    return [build_document(r, src, ip, ctx)[2] for r in records_of(data, parser)]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# ------------------------------------------------------------------ Celery text (real)


def test_celery_text_real_worker() -> None:
    docs = documents(sample("celery-5.7-text.log"), "celery")
    assert len(docs) == 16  # 38 lines: 16 prefixed, two tracebacks grouped into their records
    assert all(get(d, "event.dataset") == "celery.worker" for d in docs)
    assert all(get(d, "log.file.path") == "/var/log/test.log" for d in docs)
    assert all(get(d, "host.hostname") == "testhost" for d in docs)
    assert all("unparsed" not in d.get("tags", []) for d in docs)
    first = docs[0]
    assert first["@timestamp"] == "2026-11-24T20:59:43.703Z"
    assert get(first, "log.level") == "info" and get(first, "process.name") == "MainProcess"
    received = [d for d in docs if get(d, "celery.task.state") == "received"]
    assert {get(d, "celery.task.name") for d in received} == {
        "shop.charge",
        "shop.fail",
        "shop.retry",
        "shop.slow",
    }
    ok = next(d for d in docs if get(d, "celery.task.state") == "succeeded")
    assert get(ok, "celery.task.id") == "27347a50-e429-409a-8aa3-5f3bfefada2c"
    assert get(ok, "celery.task.runtime") == pytest.approx(0.014759062999928574)
    assert get(ok, "event.duration") == 14759062
    in_task = next(d for d in docs if d["message"] == "charging order 1")
    assert get(in_task, "celery.task.name") == "shop.charge"
    assert get(in_task, "process.name") == "ForkPoolWorker-1"
    failed = [d for d in docs if get(d, "celery.task.state") == "failed"]
    assert len(failed) == 2
    declined = next(d for d in failed if get(d, "celery.task.name") == "shop.fail")
    assert get(declined, "error.type") == "tests.celery_app_plain.PaymentDeclined"
    assert get(declined, "error.message") == "card declined for order 2"
    assert get(declined, "error.stack_trace").startswith("Traceback (most recent call last):")
    assert get(declined, "error.stack_trace").endswith("PaymentDeclined: card declined for order 2")
    assert get(declined, "log.level") == "error" and get(declined, "event.outcome") == "failure"
    assert "\n" not in declined["message"]
    retry = next(d for d in docs if get(d, "celery.task.state") == "retry")
    assert "gateway unreachable" in get(retry, "celery.task.exception")
    limit = next(d for d in docs if get(d, "celery.task.state") == "time_limit_exceeded")
    assert get(limit, "celery.task.time_limit") == {"type": "soft", "seconds": 0.5}
    assert get(limit, "celery.task.name") == "shop.slow"
    slow_failed = next(d for d in failed if get(d, "celery.task.name") == "shop.slow")
    assert get(slow_failed, "error.type") == "billiard.exceptions.SoftTimeLimitExceeded"


def test_celery_text_broker_errors_real() -> None:
    docs = documents(sample("celery-5.7-broker-errors.log"), "celery")
    lost = [d for d in docs if "broker_connection_lost" in d.get("tags", [])]
    assert len(lost) == 1 and get(lost[0], "event.category") == ["network"]
    errors = [d for d in docs if "broker_connection_error" in d.get("tags", [])]
    assert len(errors) == 3
    assert [get(d, "celery.broker.retry.attempt") for d in errors] == [1, 2, 3]
    assert get(errors[0], "celery.broker.retry.delay") == 2.0
    assert get(errors[0], "celery.broker.url") == "amqp://guest:**@127.0.0.1:5672//"
    assert get(errors[0], "error.message") == "[Errno 111] Connection refused"
    # The deprecation warning spans several lines: still one record, nothing lost.
    warning = next(d for d in docs if "CPendingDeprecationWarning" in d["message"])
    assert "worker_cancel_long_running_tasks_on_connection_loss" in warning["message"]


def test_celery_text_older_wording_and_revoked() -> None:
    docs = documents(sample("celery-4-text.documented.log"), "celery")
    assert [get(d, "celery.task.state") for d in docs] == [
        "received",
        "succeeded",
        "time_limit_exceeded",
        "revoked",
        "failed",
    ]
    assert get(docs[0], "celery.task.id") == "5c1f7a5e-3b51-4b6f-9a3e-1d8d6c2f9a01"
    assert get(docs[2], "celery.task.time_limit") == {"type": "hard", "seconds": 10.0}
    assert get(docs[4], "celery.task.expected_failure") is True


def test_celery_timezone_is_applied() -> None:
    line = b"[2026-07-01 12:00:00,250: INFO/MainProcess] hello\n"
    (doc,) = documents(line, "celery", timezone="Europe/Berlin")
    assert doc["@timestamp"] == "2026-07-01T10:00:00.250Z"  # CEST = UTC+2


def test_celery_invalid_timestamp_falls_back_and_is_tagged() -> None:
    (doc,) = documents(b"[2026-13-45 99:00:00,000: INFO/MainProcess] odd\n", "celery")
    assert doc["@timestamp"] == INGEST and "invalid_timestamp" in doc["tags"]


# ------------------------------------------------------------------ Celery JSON (real)


def test_celery_json_from_our_configurator_passes_through() -> None:
    raw = sample("celery-5.7-json.log")
    docs = documents(raw, "celery_json")
    assert len(docs) == raw.count(b"\n")
    assert all("tags" not in d for d in docs), [d.get("tags") for d in docs]
    failed = next(d for d in docs if get(d, "celery.task.state") == "failed")
    assert get(failed, "error.type") == "tests.celery_app.Boom"
    assert get(failed, "service.name") == "shipper-tests"
    assert get(failed, "log.file.path") == "/var/log/test.log"
    assert failed["@timestamp"].endswith("Z")


def test_foreign_json_loggers_are_mapped() -> None:
    line = (
        b'{"asctime": "2026-11-24 10:00:00,123", "levelname": "WARNING", "name": "app", '
        b'"message": "hi", "task_id": "t-1", "custom": {"a": 1}, "log.origin.file.line": 7}\n'
    )
    (doc,) = documents(line, "celery_json")
    assert doc["@timestamp"] == "2026-11-24T10:00:00.123Z"
    assert get(doc, "log.level") == "warning" and get(doc, "log.logger") == "app"
    assert get(doc, "celery.task.id") == "t-1"
    assert get(doc, "json.custom") == {"a": 1}
    assert get(doc, "log.origin.file.line") == 7
    (ecs,) = documents(
        b'{"@timestamp": "2026-11-24T10:00:00.123Z", "log.level": "info", "message": "x", '
        b'"ecs.version": "1.6.0"}\n',
        "celery_json",
    )
    assert get(ecs, "log.level") == "info" and get(ecs, "ecs.version") == "1.6.0"


@pytest.mark.parametrize("line", [b'{"message": "unterminated\n', b"[1, 2, 3]\n", b"not json at all\n"])
def test_bad_json_is_shipped_unparsed(line: bytes) -> None:
    (doc,) = documents(line, "celery_json")
    assert "unparsed" in doc["tags"] and doc["message"] == line.decode().rstrip("\n")
    assert doc["@timestamp"] == INGEST


# ------------------------------------------------------------------ RabbitMQ text (real + documented)


def test_rabbitmq_3_10_text_real() -> None:
    raw = sample("rabbitmq-3.10-text.log")
    docs = documents(raw, "rabbitmq")
    assert all(get(d, "event.dataset") == "rabbitmq.log" for d in docs)
    assert all("unparsed" not in d.get("tags", []) for d in docs)
    accepted = [d for d in docs if get(d, "event.action") == "connection_accepted"]
    assert len(accepted) == 4
    assert get(accepted[0], "source.ip") == "127.0.0.1" and get(accepted[0], "source.port") == 37578
    assert get(accepted[0], "destination.port") == 5672
    assert get(accepted[0], "rabbitmq.connection.pid") == "<0.1842.0>"
    auth = next(d for d in docs if get(d, "event.action") == "connection_authenticated")
    assert get(auth, "user.name") == "guest" and get(auth, "rabbitmq.vhost") == "/"
    refused = next(d for d in docs if "authentication_failure" in d.get("tags", []))
    assert get(refused, "user.name") == "guest" and get(refused, "event.outcome") == "failure"
    assert refused["message"].endswith("PLAIN login refused: user 'guest' - invalid credentials")
    assert get(refused, "log.level") == "error"
    abrupt = next(d for d in docs if "connection_closed_abruptly" in d.get("tags", []))
    # Two lines with the same prefix are one record; the repeated prefix is not in the message.
    assert abrupt["message"] == (
        "closing AMQP connection <0.1869.0> (127.0.0.1:37600 -> 127.0.0.1:5672, vhost: '/', user: 'guest'):\n"
        "client unexpectedly closed TCP connection"
    )
    assert get(abrupt, "log.level") == "warning"
    heartbeat = next(d for d in docs if "missed_heartbeats" in d.get("tags", []))
    assert get(heartbeat, "rabbitmq.connection.heartbeat_timeout") == 2
    channel = next(d for d in docs if "channel_error" in d.get("tags", []))
    assert get(channel, "rabbitmq.channel.number") == 1
    assert "not_found" in get(channel, "error.message")
    alarms = [get(d, "rabbitmq.alarm") for d in docs if get(d, "rabbitmq.alarm")]
    assert {"type": "memory", "state": "set"} in alarms and {"type": "memory", "state": "cleared"} in alarms
    assert {"type": "disk", "state": "set"} in alarms and {"type": "disk", "state": "cleared"} in alarms
    mem_set = next(d for d in docs if get(d, "rabbitmq.alarm") == {"type": "memory", "state": "set"})
    assert "Publishers will be blocked" in mem_set["message"]
    assert mem_set["@timestamp"] == "2026-11-24T21:00:08.638209Z"
    assert get(mem_set, "rabbitmq.log.pid") == "<0.287.0>"
    # Every non-empty line of the file is in exactly one document (repeated prefixes removed;
    # the prefix-only blank lines around the alarm banners are dropped).
    from shipper.parse.rabbitmq_text import MODERN

    bodies = [line[MODERN.match(line).end() :] for line in raw.decode().split("\n") if line]  # type: ignore[union-attr]
    in_docs = [line for d in docs for line in d["message"].split("\n")]
    assert sorted(b for b in bodies if b) == sorted(b for b in in_docs if b)


def test_rabbitmq_lager_3_8() -> None:
    docs = documents(sample("rabbitmq-3.8-lager.documented.log"), "rabbitmq", timezone="UTC")
    assert len(docs) == 7
    assert docs[0]["@timestamp"] == "2018-11-22T10:44:33.654Z"
    abrupt = docs[2]
    assert "connection_closed_abruptly" in abrupt["tags"]
    assert abrupt["message"].endswith("client unexpectedly closed TCP connection")
    assert "authentication_failure" in docs[3]["tags"]
    assert get(docs[4], "rabbitmq.alarm") == {"type": "memory", "state": "set"}
    assert "Publishers will be blocked" in docs[4]["message"]
    assert get(docs[6], "event.action") == "startup_complete"


def test_rabbitmq_3_6_reports() -> None:
    docs = documents(sample("rabbitmq-3.6-report.documented.log"), "rabbitmq", timezone="UTC")
    assert len(docs) == 4
    assert docs[0]["@timestamp"] == "2017-03-08T14:12:05.000Z"
    assert [get(d, "log.level") for d in docs] == ["info", "warning", "error", "info"]
    assert get(docs[0], "event.action") == "connection_accepted"
    assert "connection_closed_abruptly" in docs[1]["tags"]
    assert "authentication_failure" in docs[2]["tags"]
    assert get(docs[3], "rabbitmq.alarm") == {"type": "disk", "state": "set"}


# ------------------------------------------------------------------ RabbitMQ JSON (real)


def test_rabbitmq_json_real() -> None:
    raw = sample("rabbitmq-3.10-json.log")
    docs = documents(raw, "rabbitmq_json")
    assert len(docs) == raw.count(b"\n")
    assert all("tags" not in d or "unparsed" not in d["tags"] for d in docs)
    assert docs[0]["@timestamp"] == "2026-11-24T21:00:48.605661Z"
    assert get(docs[0], "rabbitmq.log.pid") == "<0.562.0>"
    assert get(docs[0], "rabbitmq.log.domain") == "rabbitmq.connection"
    assert get(docs[0], "event.action") == "connection_accepted"
    tags = [t for d in docs for t in d.get("tags", [])]
    for tag in (
        "authentication_failure",
        "connection_closed_abruptly",
        "missed_heartbeats",
        "channel_error",
        "memory_alarm",
        "disk_alarm",
    ):
        assert tag in tags, tag


# ------------------------------------------------------------------ auto detection


def test_auto_detects_each_format_per_record() -> None:
    mixed = (
        sample("celery-5.7-text.log")[:300].rsplit(b"\n", 1)[0]
        + b"\n"
        + sample("rabbitmq-3.10-text.log").split(b"\n", 1)[0]
        + b"\n"
        + sample("rabbitmq-3.10-json.log").split(b"\n", 1)[0]
        + b"\n"
        + sample("celery-5.7-json.log").split(b"\n", 1)[0]
        + b"\n"
        + b"something else entirely\n"
    )
    docs = documents(mixed, "auto")
    datasets = [get(d, "event.dataset") for d in docs]
    assert datasets[-5:] == [
        "celery.worker",
        "rabbitmq.log",
        "rabbitmq.log",
        "celery.worker",
        "celery.worker",
    ]
    assert "unparsed" in docs[-1]["tags"]
    assert all("unparsed" not in d.get("tags", []) for d in docs[:-1])


# ------------------------------------------------------------------ bad bytes and flags


def test_invalid_utf8_nul_and_flags_become_tags() -> None:
    inp = InputConfig(id="t", paths=("x",), parser="celery", include_original=True)
    ip = InputParsing.from_config(inp, hostname="h")
    ctx = ParseContext(TimeConverter("UTC"), INGEST)
    src = SourceRef("t", "key1", "/p")
    doc_id, dataset, doc = build_document(
        Record(10, 30, b"bad \xff\xfe and \x00 nul", TRUNCATED | NO_NEWLINE), src, ip, ctx
    )
    assert doc_id == "key1-a" and dataset == "celery.worker"
    assert doc["tags"] == ["unparsed", "invalid_utf8", "nul_bytes", "truncated", "partial_line"]
    assert "\x00" not in doc["message"] and "\ufffd" in doc["message"]
    assert get(doc, "event.original") == doc["message"]
    assert get(doc, "log.offset") == 10


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.sampled_from(sorted(PARSERS)))
def test_arbitrary_bytes_never_raise_and_every_line_is_in_one_document(data: bytes, parser: str) -> None:
    recs = records_of(data, parser, max_bytes=1 << 20)
    # Grouping loses and repeats nothing: the records are the input, in order.
    assert b"\n".join(r.data for r in recs) + (b"\n" if data.endswith(b"\n") else b"") == data or (
        not data and not recs
    )
    docs = documents(data, parser)
    assert len(docs) == len(recs)
    for doc in docs:
        assert isinstance(doc["message"], str)
        assert doc["@timestamp"]
        assert get(doc, "event.dataset") in ("celery.worker", "rabbitmq.log")


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(
            [
                b"[2026-11-24 10:00:00,000: INFO/MainProcess] Task a.b[1234] received",
                b"Traceback (most recent call last):",
                b'  File "x.py", line 1, in f',
                b"ValueError: boom",
                b"2026-11-24 10:00:00.000001+00:00 [info] <0.1.0> accepting AMQP connection <0.1.0> "
                b"(1.2.3.4:5 -> 6.7.8.9:10)",
                b"2026-11-24 10:00:00.000001+00:00 [info] <0.1.0> continued",
                b'{"msg": "x", "pid": "<0.2.0>"}',
                b"",
                b"\xff\xfe garbage",
            ]
        ),
        max_size=30,
    ),
    st.sampled_from(sorted(PARSERS)),
)
def test_realistic_mixes_keep_every_line(lines: list[bytes], parser: str) -> None:
    data = b"".join(line + b"\n" for line in lines)
    recs = records_of(data, parser)
    assert [line for r in recs for line in r.data.split(b"\n")] == lines


def test_login_refused_alone_gets_the_same_fields_as_after_a_connection_error() -> None:
    (alone,) = documents(
        b"2026-11-24 10:00:00.000001+00:00 [error] <0.9.0> PLAIN login refused: user 'bob' - "
        b"invalid credentials\n",
        "rabbitmq",
    )
    both = documents(sample("rabbitmq-3.10-text.log"), "rabbitmq")
    after_error = next(d for d in both if "authentication_failure" in d.get("tags", []))
    for field in ("event.category", "event.type", "event.action", "event.outcome", "rabbitmq.auth.mechanism"):
        assert get(alone, field) == get(after_error, field), field
    assert get(alone, "user.name") == "bob" and "authentication_failure" in alone["tags"]
