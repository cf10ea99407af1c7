"""CRLF files: the ``\\r`` of each ``\\r\\n`` is line ending, not content (issue: every message kept
its trailing ``\\r``). Parsers see the text without it; ``event.original`` keeps the bytes exact."""

from __future__ import annotations

import pytest

from shipper.config import InputConfig
from shipper.parse import InputParsing, ParseContext, TimeConverter, build_document
from shipper.parse.document import strip_crlf
from shipper.source import Record, SourceRef

SOURCE = SourceRef("in", "k", "/var/log/app.log")


def document(parser: str, data: bytes, include_original: bool = True) -> dict[str, object]:
    inp = InputConfig(id="in", paths=("x",), parser=parser, include_original=include_original)  # type: ignore[arg-type]
    ip = InputParsing.from_config(inp, hostname="h")
    _id, _dataset, doc = build_document(
        Record(0, len(data) + 1, data),
        SOURCE,
        ip,
        ParseContext(TimeConverter("UTC"), "2026-01-01T00:00:00.000Z"),
    )
    return doc


def test_strip_crlf_only_touches_line_endings() -> None:
    assert strip_crlf("a\r") == "a"
    assert strip_crlf("a\r\n  b\r") == "a\n  b"
    assert strip_crlf("a\rb") == "a\rb"  # a lone CR inside a line is content


@pytest.mark.parametrize(
    ("parser", "line", "message"),
    [
        (
            "celery",
            b"[2026-11-24 10:00:00,000: INFO/MainProcess] Connected to amqp://\r",
            "Connected to amqp://",
        ),
        (
            "rabbitmq",
            b"2026-11-24 11:48:19.985052+00:00 [info] <0.223.0> Server startup complete\r",
            "Server startup complete",
        ),
        ("celery_json", b'{"@timestamp": "2026-11-24T10:00:00.000Z", "message": "hi"}\r', "hi"),
        ("auto", b"plain text line\r", "plain text line"),
    ],
)
def test_messages_lose_the_carriage_return_and_original_keeps_it(
    parser: str, line: bytes, message: str
) -> None:
    doc = document(parser, line)
    assert doc["message"] == message
    event = doc["event"]
    assert isinstance(event, dict) and event["original"] == line.decode()


def test_a_crlf_traceback_stays_one_record_without_carriage_returns() -> None:
    data = (
        b"[2026-11-24 10:00:00,000: ERROR/ForkPoolWorker-1] Task t[1] raised unexpected: ValueError('x')\r\n"
        b"Traceback (most recent call last):\r\n"
        b'  File "x.py", line 1, in f\r\n'
        b"ValueError: x\r"
    )
    doc = document("celery", data, include_original=False)
    error = doc["error"]
    assert isinstance(error, dict)
    assert "\r" not in error["stack_trace"] and error["type"] == "ValueError"
    assert "\r" not in str(doc["message"])
