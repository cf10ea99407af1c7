"""The Celery text parser against logs from the field (issue 17): older wordings, Python 3.11+
tracebacks, billiard's quoted WorkerLostError, and every wording the parser claims.

Samples (Celery's text format has no comment syntax, so their origin is noted here):

- ``celery-3-field.documented.log``: records written from Celery's own format strings, not
  captured: ``Got task from broker: %s`` (2.5/3.0 consumer, ``Request.__str__`` with `` eta:[...]``),
  ``Task accepted: %s[%s] pid:%r`` (2.5-4.x DEBUG), ``Task %(name)s[%(id)s] raised exception:
  %(exc)s`` (2.5-3.1 ``job.py``), 2.5/3.0's ``Consumer: Connection Error: %s. Trying again in %d
  seconds...``, 3.1/4.x's ``CONNECTION_ERROR`` with ``Trying again {when}...`` (no ``(n/m)``), and
  3.1's ``Received task: %s`` with ``eta``/``expires``.
- ``celery-4-field.documented.log``: the same way: ``Task handler raised error: %r`` with a plain
  WorkerLostError traceback (Python 3, and Python 2's unqualified name under ``raised
  unexpected``), ``humanize_seconds`` units (``1.00 second``, ``1.50 minutes``) and the failover
  step.
- ``celery-5.7-py311-field.log``: CAPTURED from a real Celery 5.7 worker on Python 3.11.7 (prefork,
  one child): caret lines, ``from``-chaining, implicit chaining, ExceptionGroup trees in both chain
  orders, a multi-line message with a note, and a SIGKILLed child (billiard 4.3's
  ``ExceptionWithTraceback`` with the traceback in a ``\"\"\"`` block). Only the paths were
  shortened (``/srv/shop/...``) and the node name changed.
"""

from __future__ import annotations

from typing import Any

import pytest

from shipper.parse import ParseContext, TimeConverter
from shipper.parse.celery_text import PARSER, parse
from tests.support.docs import get
from tests.test_parsers import INGEST, documents, sample


def one(text: str) -> dict[str, Any]:
    """A record parsed by a direct call, as the pipeline would after grouping."""
    return parse(text, ParseContext(TimeConverter("UTC"), INGEST))


def by_task(docs: list[dict[str, Any]], name: str, state: str) -> dict[str, Any]:
    return next(
        d for d in docs if get(d, "celery.task.name") == name and get(d, "celery.task.state") == state
    )


# ------------------------------------------------------------------ 1. older wordings


def test_celery_2_5_and_3_0_wordings_give_task_fields() -> None:
    docs = documents(sample("celery-3-field.documented.log"), "celery")
    assert len(docs) == 8
    assert all("unparsed" not in d.get("tags", []) for d in docs)
    got = docs[0]
    assert get(got, "celery.task") == {
        "name": "tasks.add",
        "id": "7f4b0c2e-1d3a-4b5c-9e8f-0a1b2c3d4e5f",
        "state": "received",
    }
    accepted = docs[1]
    assert get(accepted, "log.level") == "debug"
    assert get(accepted, "celery.task") == {
        "name": "tasks.add",
        "id": "7f4b0c2e-1d3a-4b5c-9e8f-0a1b2c3d4e5f",
        "state": "started",
    }
    assert get(docs[2], "celery.task.eta") == "2013-02-11 10:25:00+00:00"
    assert get(docs[2], "celery.task.state") == "received"
    failed = docs[3]
    assert get(failed, "celery.task.name") == "tasks.div"
    assert get(failed, "celery.task.id") == "9f4b0c2e-1d3a-4b5c-9e8f-0a1b2c3d4e61"
    assert get(failed, "celery.task.state") == "failed"
    assert get(failed, "event.outcome") == "failure"
    assert get(failed, "celery.task.exception") == "ZeroDivisionError('integer division or modulo by zero',)"
    assert get(failed, "error.type") == "ZeroDivisionError"
    assert get(failed, "error.message") == "integer division or modulo by zero"
    # 3.1's "Received task:" carries the eta too (expires is not a mapped field).
    assert get(docs[7], "celery.task.eta") == "2014-06-02T08:05:00+00:00"
    assert get(docs[7], "celery.task.state") == "received"


def test_raised_exception_without_traceback_still_fails_the_task() -> None:
    doc = one("[2013-02-11 10:20:02,311: ERROR/MainProcess] Task t.x[abc-1] raised exception: KeyError('k',)")
    assert get(doc, "celery.task") == {
        "name": "t.x",
        "id": "abc-1",
        "state": "failed",
        "exception": "KeyError('k',)",
    }
    assert get(doc, "error.message") == "KeyError('k',)"
    assert get(doc, "event.outcome") == "failure"


# ------------------------------------------------------------------ 2. retry wording of 3.x/4.x


def test_trying_again_without_attempts_gives_the_delay_and_a_clean_error_message() -> None:
    docs = documents(sample("celery-3-field.documented.log"), "celery")
    old = docs[4]  # 2.5/3.0: one line
    assert get(old, "tags") == ["broker_connection_error"]
    assert get(old, "error.message") == "[Errno 111] Connection refused"
    assert get(old, "celery.broker.retry") == {"delay": 4.0}
    err = docs[5]  # 3.1/4.x: CONNECTION_ERROR, the step on its own line, then a blank line
    assert err["message"].endswith("Connection refused.\nTrying again in 18.00 seconds...")
    assert get(err, "error.message") == "[Errno 111] Connection refused"
    assert get(err, "celery.broker.url") == "amqp://guest:**@rabbit:5672//"
    assert get(err, "celery.broker.retry") == {"delay": 18.0}
    assert get(err, "event.outcome") == "failure"
    # The next prefixed line is its own record, not part of the error.
    assert docs[6]["message"] == "Connected to amqp://guest:**@rabbit:5672//"
    assert get(docs[6], "error") is None


def test_a_prefixed_trying_again_line_is_its_own_record() -> None:
    data = (
        b"[2019-06-10 04:10:00,000: ERROR/MainProcess] consumer: Cannot connect to amqp://h//: boom.\n"
        b"[2019-06-10 04:10:00,001: ERROR/MainProcess] Trying again in 18.00 seconds...\n"
    )
    first, second = documents(data, "celery")
    assert get(first, "error.message") == "boom"
    assert get(first, "celery.broker.retry") is None
    assert second["message"] == "Trying again in 18.00 seconds..."


def test_humanized_units_and_other_next_steps() -> None:
    docs = documents(sample("celery-4-field.documented.log"), "celery")
    assert get(docs[2], "celery.broker.retry") == {"delay": 1.0}
    assert get(docs[2], "error.message") == "[Errno 104] Connection reset by peer"
    assert get(docs[3], "celery.broker.retry") == {"delay": 90.0}
    assert get(docs[3], "error.message") == "timed out"
    assert get(docs[4], "celery.broker.retry") is None
    assert get(docs[4], "error.message") == "[Errno 111] Connection refused"
    assert get(docs[4], "tags") == ["broker_connection_error"]


# ------------------------------------------------------------------ 3. WorkerLostError


def test_worker_lost_in_billiards_quoted_block_real() -> None:
    docs = documents(sample("celery-5.7-py311-field.log"), "celery")
    lost = next(d for d in docs if d["message"].startswith("Task handler raised error: "))
    assert get(lost, "error.type") == "billiard.exceptions.WorkerLostError"
    assert get(lost, "error.message") == "Worker exited prematurely: signal 9 (SIGKILL) Job: 3."
    assert get(lost, "error.stack_trace").endswith('Job: 3.\n"""')
    assert lost["message"] == (
        "Task handler raised error: WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL) Job: 3.')"
    )


def test_worker_lost_plain_tracebacks_documented() -> None:
    docs = documents(sample("celery-4-field.documented.log"), "celery")
    assert get(docs[0], "error.type") == "billiard.exceptions.WorkerLostError"
    assert get(docs[0], "error.message") == "Worker exited prematurely: signal 15 (SIGTERM)."
    assert get(docs[1], "error.type") == "WorkerLostError"  # Python 2: no module
    assert get(docs[1], "celery.task.state") == "failed"


def test_quoted_block_with_nothing_recognisable_keeps_the_wrapper() -> None:
    doc = one(
        "[2024-01-01 00:00:00,000: ERROR/MainProcess] x\n"
        "Traceback (most recent call last):\n"
        '  File "a.py", line 1, in f\n'
        "billiard.einfo.ExceptionWithTraceback:\n"
        '"""\n'
        "nothing to see here\n"
        '"""'
    )
    assert get(doc, "error.type") == "billiard.einfo.ExceptionWithTraceback"


# ------------------------------------------------------------------ 4. Python 3.11+ tracebacks


def test_python_3_11_tracebacks_stay_one_record_with_the_raised_exception_real() -> None:
    raw = sample("celery-5.7-py311-field.log")
    docs = documents(raw, "celery")
    assert len(docs) == raw.count(b"\n[") + 1 == 18  # every prefixed line starts one, no other
    assert all("unparsed" not in d.get("tags", []) for d in docs)
    caret = by_task(docs, "shop.caret", "failed")
    assert get(caret, "error.type") == "TypeError"
    assert get(caret, "error.message") == 'can only concatenate str (not "int") to str'
    assert "~~~~~~~~~~~~~~~~~~~~^~~" in get(caret, "error.stack_trace")
    cause = by_task(docs, "shop.chained", "failed")
    assert (get(cause, "error.type"), get(cause, "error.message")) == ("RuntimeError", "order lookup failed")
    assert "KeyError: 'order'" in get(cause, "error.stack_trace")
    context = by_task(docs, "shop.context", "failed")
    assert (get(context, "error.type"), get(context, "error.message")) == (
        "ValueError",
        "no order in payload",
    )
    assert "During handling of the above exception" in get(context, "error.stack_trace")
    # An ExceptionGroup: the group itself was raised; its line comes before its sub-exceptions.
    group = by_task(docs, "shop.batch", "failed")
    assert get(group, "error.type") == "ExceptionGroup"
    assert get(group, "error.message") == "batch failed (2 sub-exceptions)"
    assert get(group, "error.stack_trace").startswith("  + Exception Group Traceback")
    assert get(group, "error.stack_trace").endswith("      +------------------------------------")
    assert group["message"].startswith("Task shop.batch[") and "\n" not in group["message"]
    after_cause = by_task(docs, "shop.cause_then_group", "failed")
    assert get(after_cause, "error.type") == "ExceptionGroup"
    assert get(after_cause, "error.message") == "refund failed (1 sub-exception)"
    # A group that caused another exception: the traceback starts with the group's tree.
    then_cause = by_task(docs, "shop.group_then_cause", "failed")
    assert (get(then_cause, "error.type"), get(then_cause, "error.message")) == (
        "RuntimeError",
        "batch aborted",
    )
    assert get(then_cause, "error.stack_trace").startswith("  + Exception Group Traceback")
    assert "\n" not in then_cause["message"]
    # A multi-line message and a note (3.11): the type is the exception's, not the note's.
    noted = by_task(docs, "shop.noted", "failed")
    assert get(noted, "error.type") == "ValueError"
    assert (
        get(noted, "error.message") == "stock mismatch\nsku 12: expected 3, found 1\nhint: run inventory sync"
    )


def test_group_message_lines_and_bare_exception_names() -> None:
    doc = one(
        "[2024-01-01 00:00:00,000: ERROR/MainProcess] boom\n"
        "  + Exception Group Traceback (most recent call last):\n"
        '  |   File "a.py", line 1, in f\n'
        "  |     raise ExceptionGroup(...)\n"
        "  | ExceptionGroup: two\n"
        "  | lines (1 sub-exception)\n"
        "  +-+---------------- 1 ----------------\n"
        "    | KeyError\n"
        "    +------------------------------------"
    )
    assert (get(doc, "error.type"), get(doc, "error.message")) == (
        "ExceptionGroup",
        "two\nlines (1 sub-exception)",
    )
    bare = one(
        "[2024-01-01 00:00:00,000: ERROR/MainProcess] boom\n"
        'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    raise KeyError\nKeyError'
    )
    assert (get(bare, "error.type"), get(bare, "error.message")) == ("KeyError", None)


@pytest.mark.parametrize(
    "line",
    [
        b"    ^^^^^^^^^^^^^^^^^^^^",
        b"           ~~~~~~~~~~~~^~~",
        b"  + Exception Group Traceback (most recent call last):",
        b"  +-+---------------- 1 ----------------",
        b"    | ValueError: a",
        b"During handling of the above exception, another exception occurred:",
        b"The above exception was the direct cause of the following exception:",
        b'"""',
        b"",
    ],
)
def test_traceback_lines_continue_the_record(line: bytes) -> None:
    assert PARSER.continues is not None
    assert PARSER.continues(b"[2024-01-01 00:00:00,000: ERROR/MainProcess] x", line)


# ------------------------------------------------------------------ every wording we claim

P = "[2024-05-06 07:08:09,123: INFO/MainProcess] "
W = "[2024-05-06 07:08:09,123: ERROR/ForkPoolWorker-2] "
ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
N = "app.tasks.add"

#: (record, {dotted field: expected}) for every wording the Celery text parser understands.
WORDINGS: list[tuple[str, dict[str, Any]]] = [
    # Celery >= 5.1 life cycle (Task name[id] ...)
    (
        f"{P}Task {N}[{ID}] received",
        {"celery.task.name": N, "celery.task.id": ID, "celery.task.state": "received"},
    ),
    (
        f"{W}Task {N}[{ID}] succeeded in 0.25s: 3",
        {
            "celery.task.name": N,
            "celery.task.id": ID,
            "celery.task.state": "succeeded",
            "celery.task.runtime": 0.25,
            "event.duration": 250000000,
        },
    ),
    (
        f"{W}Task {N}[{ID}] raised unexpected: ValueError('x')",
        {
            "celery.task.state": "failed",
            "celery.task.exception": "ValueError('x')",
            "event.outcome": "failure",
            "error.message": "ValueError('x')",
            "celery.task.id": ID,
        },
    ),
    (
        f"{W}Task {N}[{ID}] raised expected: Ignore()",
        {
            "celery.task.state": "failed",
            "celery.task.expected_failure": True,
            "celery.task.exception": "Ignore()",
        },
    ),
    (
        f"{W}Task {N}[{ID}] INTERNAL ERROR: KeyError('a')",
        {"celery.task.state": "failed", "celery.task.exception": "KeyError('a')", "event.outcome": "failure"},
    ),
    (
        f"{W}Task {N}[{ID}] raised exception: KeyError('a',)",  # 2.5-3.1
        {"celery.task.name": N, "celery.task.state": "failed", "event.outcome": "failure"},
    ),
    (
        f"{W}Task {N}[{ID}] retry: Retry in 5s: ConnectionError()",
        {"celery.task.state": "retry", "celery.task.exception": "Retry in 5s: ConnectionError()"},
    ),
    (f"{W}Task {N}[{ID}] ignored", {"celery.task.state": "ignored", "celery.task.id": ID}),
    (f"{W}Task {N}[{ID}] rejected: Reject('no')", {"celery.task.state": "rejected", "celery.task.id": ID}),
    # worker_task_log_format: a record logged inside a task
    (
        f"{W}{N}[{ID}]: charging order 1",
        {"celery.task.name": N, "celery.task.id": ID, "message": "charging order 1"},
    ),
    # Older wordings
    (
        f"{P}Received task: {N}[{ID}]",
        {"celery.task.name": N, "celery.task.id": ID, "celery.task.state": "received"},
    ),
    (
        f"{P}Received task: {N}[{ID}] eta:[2024-05-06T08:00:00+00:00] expires:[2024-05-06T09:00:00+00:00]",
        {"celery.task.state": "received", "celery.task.eta": "2024-05-06T08:00:00+00:00"},
    ),
    (
        f"{P}Got task from broker: {N}[{ID}]",
        {"celery.task.name": N, "celery.task.id": ID, "celery.task.state": "received"},
    ),
    (
        f"{P}Got task from broker: {N}[{ID}] eta:[2013-01-01 10:00:00]",
        {"celery.task.id": ID, "celery.task.eta": "2013-01-01 10:00:00"},
    ),
    (
        f"{P}Task accepted: {N}[{ID}] pid:4242",
        {"celery.task.name": N, "celery.task.id": ID, "celery.task.state": "started"},
    ),
    (
        f"{P}Soft time limit (0.5s) exceeded for {N}[{ID}]",
        {
            "celery.task.state": "time_limit_exceeded",
            "celery.task.time_limit": {"type": "soft", "seconds": 0.5},
            "event.outcome": "failure",
            "celery.task.name": N,
        },
    ),
    (
        f"{P}Hard time limit (10s) exceeded for {N}[{ID}]",
        {"celery.task.time_limit": {"type": "hard", "seconds": 10.0}, "celery.task.id": ID},
    ),
    (
        f"{P}Discarding revoked task: {N}[{ID}]",
        {"celery.task.state": "revoked", "celery.task.name": N, "celery.task.id": ID},
    ),
    # Broker trouble
    (
        f"{P}consumer: Cannot connect to amqp://u:**@h:5672//: [Errno 111] Connection refused.\n"
        "Trying again in 2.00 seconds... (1/100)\n",
        {
            "celery.broker.url": "amqp://u:**@h:5672//",
            "celery.broker.retry": {"delay": 2.0, "attempt": 1, "max": 100},
            "error.message": "[Errno 111] Connection refused",
            "tags": ["broker_connection_error"],
            "event.outcome": "failure",
        },
    ),
    (
        f"{P}consumer: Cannot connect to amqp://u:**@h:5672//: [Errno 111] Connection refused.\n"
        "Trying again in 18.00 seconds...\n",
        {"celery.broker.retry": {"delay": 18.0}, "error.message": "[Errno 111] Connection refused"},
    ),
    (
        f"{P}consumer: Cannot connect to amqp://u:**@h:5672//: timed out.\nTrying again now... (0/100)\n",
        {"celery.broker.retry": {"delay": 0.0, "attempt": 0, "max": 100}, "error.message": "timed out"},
    ),
    (
        f"{P}consumer: Cannot connect to amqp://u:**@h:5672//: timed out.\nTrying again in 2.00 hours...\n",
        {"celery.broker.retry": {"delay": 7200.0}, "error.message": "timed out"},
    ),
    (
        f"{P}consumer: Cannot connect to amqp://u:**@h:5672//: timed out.\nTrying to reconnect...\n",
        {
            "celery.broker.retry": None,
            "error.message": "timed out",
            "celery.broker.url": "amqp://u:**@h:5672//",
        },
    ),
    (
        f"{P}consumer: Cannot connect to amqp://u:**@h:5672//: timed out.",
        {"celery.broker.retry": None, "error.message": "timed out"},
    ),
    (
        f"{P}Consumer: Connection Error: [Errno 111] Connection refused. Trying again in 4 seconds...",
        {
            "celery.broker.retry": {"delay": 4.0},
            "error.message": "[Errno 111] Connection refused",
            "tags": ["broker_connection_error"],
        },
    ),
    (
        f"{P}consumer: Connection to broker lost. Trying to re-establish the connection...",
        {"tags": ["broker_connection_lost"], "event.category": ["network"]},
    ),
]


@pytest.mark.parametrize(
    ("record", "expected"), WORDINGS, ids=[w[0].split("] ", 1)[1][:48] for w in WORDINGS]
)
def test_every_field_we_claim_from_every_wording_we_claim(record: str, expected: dict[str, Any]) -> None:
    doc = one(record.rstrip("\n"))
    assert doc["@timestamp"] == "2024-05-06T07:08:09.123Z"
    assert "unparsed" not in doc.get("tags", [])
    for field, value in expected.items():
        assert get(doc, field) == value, field


@pytest.mark.parametrize(
    "record",
    [
        f"{P}Soft time limit (1.2.3s) exceeded for {N}[{ID}]",
        f"{P}consumer: Cannot connect to amqp://h//: x.\nTrying again in 1.2.3 seconds... (1/2)",
    ],
)
def test_malformed_numbers_do_not_raise(record: str) -> None:
    doc = one(record)
    assert doc["message"].startswith(record.split("\n")[0][len(P) :])
