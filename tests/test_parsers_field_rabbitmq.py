"""RabbitMQ parsers and ``auto`` against logs from the field (issue 17).

Samples (tests/samples/*-field.*):

- ``rabbitmq-3.7-filebeat-field.documented.log``: the lager-era test log of Filebeat's RabbitMQ module
  (elastic/beats, ``x-pack/filebeat/module/rabbitmq/log/test/test.log`` before it was replaced by a
  3.11 log), rebuilt line by line from that module's ``test.log-expected.json``: every record's
  ``log.offset`` there matches the rebuilt file byte for byte. ``...expected.json`` holds Filebeat's
  expected message, level, pid and timestamp (``-02:00``) for each record.
- ``rabbitmq-3.9-lc4-field.documented.log``: 3.9+ format with ``log.*.formatter.level_format = lc4``
  (four-letter levels), an IPv6 peer, the "can only connect via localhost" refusal and the
  management plugin's ``HTTP access denied`` wordings (``rabbit_mgmt_util``), as documented.
- ``rabbitmq-3.6-report-field.documented.log``: 3.5/3.6 reports as pasted in public issues: login
  refused inside ``{handshake_error,...}``, ``connection_closed_abruptly``, IPv6 and IPv4-mapped
  peers, an Erlang term as the close reason.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from typing import Any

import pytest

from shipper.parse import rabbitmq_messages
from tests.support.docs import get
from tests.test_parsers import SAMPLES, documents, records_of, sample


def rabbit_line(msg: str, level: str = "info") -> bytes:
    return f"2026-11-24 10:00:00.000001+00:00 [{level}] <0.9.0> {msg}\n".encode()


def one(msg: str, level: str = "info") -> dict[str, Any]:
    (doc,) = documents(rabbit_line(msg, level), "rabbitmq")
    return doc


def tags(doc: dict[str, Any]) -> list[str]:
    return list(doc.get("tags", []))


# ------------------------------------------------------------------ 1. four-letter levels


@pytest.mark.parametrize(
    ("written", "ecs"),
    [
        ("erro", "error"),
        ("dbug", "debug"),
        ("warn", "warning"),
        ("noti", "notice"),
        ("crit", "critical"),
        ("info", "info"),
        ("alrt", "alert"),
        ("emgc", "emergency"),
        ("error", "error"),
        ("warning", "warning"),
        ("debug", "debug"),
        ("notice", "notice"),
        ("critical", "critical"),
    ],
)
def test_level_forms_map_to_ecs(written: str, ecs: str) -> None:
    assert get(one("hello", written), "log.level") == ecs
    lager = f"2019-04-03 11:13:15.076 [{written}] <0.8.0> hello\n".encode()
    (doc,) = documents(lager, "rabbitmq")
    assert get(doc, "log.level") == ecs
    (js,) = documents(
        json.dumps(
            {"time": "2026-11-24 10:00:00.000001+00:00", "level": written, "msg": "m", "pid": "<0.1.0>"}
        ).encode()
        + b"\n",
        "rabbitmq_json",
    )
    assert get(js, "log.level") == ecs


def test_lc4_sample_levels() -> None:
    docs = documents(sample("rabbitmq-3.9-lc4-field.documented.log"), "rabbitmq")
    assert all("unparsed" not in tags(d) for d in docs)
    levels = [get(d, "log.level") for d in docs]
    assert set(levels) == {"info", "debug", "notice", "warning", "error", "critical", "alert", "emergency"}
    assert not {"erro", "dbug", "noti", "warn", "crit", "alrt", "emgc"} & set(levels)


# ------------------------------------------------------------------ 2. authentication failures

#: What the existing login-refused handling sets (tests/test_parsers.py::
#: test_login_refused_alone_gets_the_same_fields_as_after_a_connection_error); every refusal gets it.
AUTH_FAILURE = {
    "event.category": ["authentication"],
    "event.type": ["start"],
    "event.action": "login_refused",
    "event.outcome": "failure",
}


def assert_auth_failure(doc: dict[str, Any], user: str | None) -> None:
    for field, value in AUTH_FAILURE.items():
        assert get(doc, field) == value, (field, doc)
    assert "authentication_failure" in tags(doc), doc
    assert get(doc, "user.name") == user


def test_the_existing_amqp_refusal_sets_what_every_refusal_must_set() -> None:
    refused = next(
        d
        for d in documents(sample("rabbitmq-3.10-text.log"), "rabbitmq")
        if "authentication_failure" in tags(d)
    )
    assert_auth_failure(refused, "guest")


def test_login_refused_without_a_dash_can_only_connect_via_localhost() -> None:
    doc = one("PLAIN login refused: user 'root' can only connect via localhost", "erro")
    assert_auth_failure(doc, "root")
    assert get(doc, "rabbitmq.auth") == {"mechanism": "PLAIN", "reason": "can only connect via localhost"}


def test_login_refused_without_a_dash_after_a_connection_error_ipv6() -> None:
    docs = documents(sample("rabbitmq-3.9-lc4-field.documented.log"), "rabbitmq")
    err = next(d for d in docs if d["message"].startswith("Error on AMQP connection"))
    assert_auth_failure(err, "root")
    assert get(err, "source") == {"ip": "::1", "port": 53318}
    assert get(err, "destination") == {"ip": "::1", "port": 5672}
    alone = next(d for d in docs if d["message"].startswith("PLAIN login refused"))
    assert_auth_failure(alone, "root")


@pytest.mark.parametrize(
    ("msg", "user", "reason"),
    [
        ("HTTP access denied: user 'guest' - invalid credentials", "guest", "invalid credentials"),
        ("HTTP access denied: user 'monitoring' - Not management user", "monitoring", "Not management user"),
        ("HTTP access denied: user 'ops' - Not administrator user", "ops", "Not administrator user"),
        (
            "HTTP access denied: user 'guest' - User can only log in via localhost",
            "guest",
            "User can only log in via localhost",
        ),
        ("HTTP access denied: basic auth disabled", None, "basic auth disabled"),
    ],
)
def test_http_access_denied(msg: str, user: str | None, reason: str) -> None:
    doc = one(msg, "warn")
    assert_auth_failure(doc, user)
    assert get(doc, "rabbitmq.auth.reason") == reason
    assert get(doc, "network.protocol") == "http"
    assert get(doc, "log.level") == "warning"


def test_3_6_reports_from_the_field() -> None:
    docs = documents(sample("rabbitmq-3.6-report-field.documented.log"), "rabbitmq", timezone="UTC")
    assert len(docs) == 7
    assert all("unparsed" not in tags(d) for d in docs)
    # Login refused quoted inside the {handshake_error,...} term of a closing report.
    assert_auth_failure(docs[1], "guest")
    assert get(docs[1], "rabbitmq.auth") == {"mechanism": "PLAIN", "reason": "can only connect via localhost"}
    assert get(docs[1], "source") == {"ip": "10.0.2.2", "port": 56346}
    assert "{handshake_error,starting,0," in get(docs[1], "rabbitmq.connection.close_reason")
    assert_auth_failure(docs[2], "celery")
    assert get(docs[2], "rabbitmq.auth") == {"mechanism": "AMQPLAIN", "reason": "invalid credentials"}
    # HTTP, 3.6 wording (its format ends with ~n: the message ends at the record, not after it).
    assert_auth_failure(docs[6], "guest")
    assert docs[6]["message"] == "HTTP access denied: user 'guest' - invalid credentials"


# ------------------------------------------------------------------ 3. abrupt close, IPv6


def test_connection_closed_abruptly_3_6_gets_what_the_modern_wording_gets() -> None:
    modern = next(
        d
        for d in documents(sample("rabbitmq-3.10-text.log"), "rabbitmq")
        if "client unexpectedly closed TCP connection" in d["message"]
    )
    docs = documents(sample("rabbitmq-3.6-report-field.documented.log"), "rabbitmq", timezone="UTC")
    for old in (docs[3], docs[4]):
        assert "connection_closed_abruptly" in tags(old)
        for field in ("event.category", "event.type", "event.action", "event.outcome"):
            assert get(old, field) == get(modern, field), field
        assert get(old, "rabbitmq.connection.close_reason") == "connection_closed_abruptly"
    assert get(docs[4], "user.name") == "celery" and get(docs[4], "rabbitmq.vhost") == "/"
    # IPv4-mapped and link-local IPv6 peers: brackets gone, valid addresses.
    assert get(docs[4], "source") == {"ip": "::ffff:10.0.0.7", "port": 40112}
    assert get(docs[4], "destination") == {"ip": "fe80::a00:27ff:fe4e:66a1", "port": 5672}
    # Any other reason is not "abrupt".
    assert "connection_closed_abruptly" not in tags(docs[5])
    assert get(docs[5], "rabbitmq.connection.close_reason") == "{inet_error,etimedout}"


@pytest.mark.parametrize(
    "msg",
    [
        "accepting AMQP connection <0.901.0> ([::1]:53318 -> [::1]:5672)",
        "connection <0.901.0> ([::1]:53318 -> [::1]:5672): user 'guest' authenticated and granted access "
        "to vhost '/'",
        "closing AMQP connection <0.901.0> ([::1]:53318 -> [::1]:5672, vhost: '/', user: 'guest'):\n"
        "client unexpectedly closed TCP connection",
        "Error on AMQP connection <0.901.0> ([::1]:53318 -> [::1]:5672, state: starting):\n"
        "PLAIN login refused: user 'guest' - invalid credentials",
        "Channel error on connection <0.901.0> ([::1]:53318 -> [::1]:5672, vhost: '/', user: 'guest'), "
        "channel 1:\n"
        "operation queue.declare caused a channel exception not_found: no queue 'q'",
        "connection <0.901.0> ([::1]:53318 -> [::1]:5672) has a client-provided name: celery@w1",
    ],
)
def test_ipv6_peers_are_valid_ip_fields(msg: str) -> None:
    # Both in one record (3.9+ repeats the prefix on each line of a multi-line message).
    raw = b"".join(rabbit_line(line) for line in msg.split("\n"))
    (doc,) = documents(raw, "rabbitmq")
    for side, port in (("source", 53318), ("destination", 5672)):
        assert get(doc, side) == {"ip": "::1", "port": port}, doc
        ipaddress.ip_address(get(doc, f"{side}.ip"))


def test_host_names_from_reverse_dns_are_not_put_in_ip_fields() -> None:
    doc = one("accepting AMQP connection <0.9.0> (worker-1.example.com:53318 -> rabbit.example.com:5672)")
    assert get(doc, "source") == {"domain": "worker-1.example.com", "port": 53318}
    assert get(doc, "destination") == {"domain": "rabbit.example.com", "port": 5672}
    doc = one("accepting AMQP connection <0.9.0> (10.0.0.5.nip.io:53318 -> [not-an-ip]:5672)")
    assert get(doc, "source") == {"domain": "10.0.0.5.nip.io", "port": 53318}
    assert get(doc, "destination") == {"domain": "not-an-ip", "port": 5672}


# ------------------------------------------------------------------ 4. messages byte-exact (banners)


def test_filebeat_rabbitmq_module_3_7_log_gives_filebeats_expected_output() -> None:
    """Every record of Filebeat's lager-era test log: same offset, message (byte for byte, the
    banner's leading newline and the node block's leading space included), level, pid and instant."""
    docs = documents(sample("rabbitmq-3.7-filebeat-field.documented.log"), "rabbitmq", timezone="Etc/GMT+2")
    expected = json.loads((SAMPLES / "rabbitmq-3.7-filebeat-field.expected.json").read_text())
    assert len(docs) == len(expected)
    for doc, exp in zip(docs, expected, strict=True):
        assert get(doc, "log.offset") == exp["offset"]
        assert doc["message"] == exp["message"]
        assert get(doc, "log.level") == exp["log.level"]
        assert get(doc, "rabbitmq.log.pid") == exp["rabbitmq.log.pid"]
        instant = dt.datetime.fromisoformat(exp["@timestamp"]).astimezone(dt.UTC)
        assert doc["@timestamp"] == instant.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert "unparsed" not in tags(doc)
    assert docs[1]["message"].startswith("\n Starting RabbitMQ 3.7.14 on Erlang 21.3.2\n")
    assert get(docs[19], "event.action") == "startup_complete"
    assert get(docs[20], "event.action") == "connection_accepted"
    assert get(docs[21], "event.action") == "connection_authenticated"


def test_3_9_banner_keeps_its_leading_newline() -> None:
    (banner, *_) = documents(sample("rabbitmq-3.9-lc4-field.documented.log"), "rabbitmq")
    assert banner["message"] == (
        "\n Starting RabbitMQ 3.9.0 on Erlang 24.0.4 [jit]"
        "\n Copyright (c) 2007-2021 VMware, Inc. or its affiliates."
        "\n Licensed under the MPL 2.0. Website: https://rabbitmq.com"
    )


def test_3_6_report_body_keeps_leading_blank_line_and_loses_only_the_separator() -> None:
    raw = b"=INFO REPORT==== 8-Mar-2017::14:12:05 ===\n\nStarting RabbitMQ 3.6.6 on Erlang 19.1\n\n"
    (doc,) = documents(raw, "rabbitmq")
    assert doc["message"] == "\nStarting RabbitMQ 3.6.6 on Erlang 19.1"


# ------------------------------------------------------------------ 5. auto: "{" is not a JSON record

#: Celery 5's "unregistered task" error (celery/worker/consumer/consumer.py, UNKNOWN_TASK_ERROR), as
#: pasted in public issues: the header and delivery-info dumps are Python dict reprs at column 0.
CELERY_UNREGISTERED = sample("celery-5-unregistered-task-field.documented.log")

#: Erlang terms at column 0 of lager records (a close reason, a crash reason), and JSON printed
#: inside a record that is not a log record of its own.
LAGER_ERLANG_TERMS = sample("rabbitmq-3.7-erlang-terms-field.documented.log")


def assert_auto_matches(raw: bytes, parser: str, timezone: str = "UTC") -> list[dict[str, Any]]:
    own = documents(raw, parser, timezone=timezone)
    mixed = documents(raw, "auto", timezone=timezone)
    assert [d["message"] for d in mixed] == [d["message"] for d in own]
    for doc in mixed:
        assert not {"unparsed", "invalid_json"} & set(tags(doc)), doc
    return mixed


@pytest.mark.parametrize(
    "name", ["rabbitmq-3.6-report-field.documented.log", "rabbitmq-3.7-filebeat-field.documented.log"]
)
def test_auto_keeps_erlang_terms_inside_rabbitmq_records(name: str) -> None:
    assert_auto_matches(sample(name), "rabbitmq")


def test_auto_keeps_erlang_terms_and_embedded_json_inside_lager_records() -> None:
    docs = assert_auto_matches(LAGER_ERLANG_TERMS, "rabbitmq")
    assert len(docs) == 3
    assert get(docs[0], "rabbitmq.connection.close_reason") == "{handshake_timeout,frame_header}"
    assert docs[1]["message"].endswith('{"not": "a log record, just JSON printed inside one"}')


def test_auto_keeps_celery_unregistered_task_dump_in_one_record() -> None:
    docs = assert_auto_matches(CELERY_UNREGISTERED, "celery")
    assert len(docs) == 2
    assert "{'lang': 'py', 'task': 'tasks.add'" in docs[0]["message"] + get(docs[0], "error.stack_trace")
    assert get(docs[0], "error.type") == "KeyError"
    assert all(get(d, "event.dataset") == "celery.worker" for d in docs)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_auto_still_starts_a_record_at_a_json_log_line(eol: bytes) -> None:
    celery_json = (
        b'{"@timestamp": "2026-11-24T10:00:00.000Z", "message": "from json", "log": {"level": "info"}}'
    )
    rabbit_json = (
        b'{"time": "2026-11-24 10:00:00.000001+00:00", "level": "erro", "msg": "x", "pid": "<0.1.0>"}'
    )
    plain = b'{"msg": "x", "pid": "<0.2.0>"}'
    raw = eol.join(
        [
            b"[2026-11-24 10:00:00,000: INFO/MainProcess] text",
            celery_json,
            b"2019-06-04 12:00:00.000 [info] <0.5.0> lager",
            rabbit_json,
            b"2026-11-24 10:00:00.000001+00:00 [info] <0.1.0> modern",
            plain,
            b"",
        ]
    )
    docs = documents(raw, "auto")
    assert [d["message"] for d in docs] == ["text", "from json", "lager", "x", "modern", "x"]
    assert [get(d, "event.dataset") for d in docs] == ["celery.worker"] * 2 + ["rabbitmq.log"] * 4
    assert get(docs[3], "log.level") == "error"


@pytest.mark.parametrize(
    "line",
    [
        b"{handshake_error,starting,0,",
        b"{inet_error,etimedout}",
        b"{'lang': 'py', 'task': 'tasks.add'}",
        b"{}",
        b'{"a": 1}',
        b'{"a": [1, 2]}',
        b'["message", "time"]',
        b"{not json at all}",
        b'{"message": "unterminated',
    ],
)
def test_auto_lines_that_are_no_json_log_record_continue(line: bytes) -> None:
    for first in (
        b"[2026-11-24 10:00:00,000: ERROR/MainProcess] text",
        b"2019-06-04 12:00:00.000 [info] <0.5.0> lager",
        b"=ERROR REPORT==== 12-Feb-2016::10:17:01 ===",
    ):
        assert len(records_of(first + b"\n" + line + b"\n", "auto")) == 1, (first, line)


# ------------------------------------------------------------------ every wording we claim, every field

C = "<0.901.0>"
PEERS = "10.0.0.5:53444 -> 10.0.0.2:5672"
ENDS = {"source.ip": "10.0.0.5", "source.port": 53444, "destination.ip": "10.0.0.2", "destination.port": 5672}
CLOSED = {**ENDS, "event.action": "connection_closed", "rabbitmq.connection.pid": C}
REFUSED = {**AUTH_FAILURE, "tags": ["authentication_failure"]}

#: (message, fields it must give): one row per wording the parsers claim (rabbitmq_messages.py).
WORDINGS: list[tuple[str, dict[str, Any]]] = [
    (
        f"accepting AMQP connection {C} ({PEERS})",
        {
            **ENDS,
            "rabbitmq.connection.pid": C,
            "event.category": ["network"],
            "event.type": ["connection", "start"],
            "event.action": "connection_accepted",
        },
    ),
    (
        f"connection {C} ({PEERS}): user 'celery' authenticated and granted access to vhost 'prod'",
        {
            **ENDS,
            "user.name": "celery",
            "rabbitmq.vhost": "prod",
            "event.category": ["authentication"],
            "event.action": "connection_authenticated",
            "event.outcome": "success",
        },
    ),
    (
        f"connection {C} ({PEERS}) has a client-provided name: celery@w1",
        {**ENDS, "rabbitmq.connection.name": "celery@w1"},
    ),
    (f"closing AMQP connection {C} ({PEERS})", {**CLOSED, "event.type": ["connection", "end"]}),
    (
        f"closing AMQP connection {C} ({PEERS}, vhost: 'prod', user: 'celery')",
        {**CLOSED, "user.name": "celery", "rabbitmq.vhost": "prod"},
    ),
    (
        f"closing AMQP connection {C} ({PEERS}, vhost: '/', user: 'celery'):\n"
        "client unexpectedly closed TCP connection",
        {**CLOSED, "event.outcome": "failure", "tags": ["connection_closed_abruptly"]},
    ),
    (
        f"closing AMQP connection {C} ({PEERS}):\nconnection_closed_abruptly",
        {**CLOSED, "event.outcome": "failure", "tags": ["connection_closed_abruptly"]},
    ),
    (
        f"closing AMQP connection {C} ({PEERS}):\nmissed heartbeats from client, timeout: 60s",
        {
            **CLOSED,
            "event.outcome": "failure",
            "tags": ["missed_heartbeats"],
            "rabbitmq.connection.heartbeat_timeout": 60,
        },
    ),
    (
        f"closing AMQP connection {C} ({PEERS}):\n"
        "{handshake_error,starting,0,\n  {amqp_error,access_refused,\n"
        "    \"AMQPLAIN login refused: user 'celery' - invalid credentials\",\n    'connection.start_ok'}}",
        {**ENDS, **REFUSED, "user.name": "celery", "rabbitmq.auth.mechanism": "AMQPLAIN"},
    ),
    (
        f"Error on AMQP connection {C} ({PEERS}, state: starting):\n"
        "PLAIN login refused: user 'guest' - invalid credentials",
        {**ENDS, **REFUSED, "user.name": "guest", "rabbitmq.auth.reason": "invalid credentials"},
    ),
    (
        "PLAIN login refused: user 'root' can only connect via localhost",
        {**REFUSED, "user.name": "root", "rabbitmq.auth.reason": "can only connect via localhost"},
    ),
    (
        "EXTERNAL login refused: user 'CN=w1,O=acme' - invalid credentials",
        {**REFUSED, "user.name": "CN=w1,O=acme", "rabbitmq.auth.mechanism": "EXTERNAL"},
    ),
    (
        "HTTP access denied: user 'guest' - invalid credentials",
        {**REFUSED, "user.name": "guest", "network.protocol": "http"},
    ),
    ("HTTP access denied: basic auth disabled", {**REFUSED, "rabbitmq.auth.reason": "basic auth disabled"}),
    (
        f"Channel error on connection {C} ({PEERS}, vhost: 'prod', user: 'celery'), channel 3:\n"
        "operation queue.declare caused a channel exception not_found: no queue 'q' in vhost 'prod'",
        {
            **ENDS,
            "user.name": "celery",
            "rabbitmq.vhost": "prod",
            "rabbitmq.channel.number": 3,
            "event.action": "channel_error",
            "event.outcome": "failure",
            "tags": ["channel_error"],
        },
    ),
    (
        "memory resource limit alarm set on node rabbit@c1.",
        {
            "rabbitmq.alarm": {"type": "memory", "state": "set"},
            "event.action": "alarm_set",
            "tags": ["memory_alarm"],
        },
    ),
    (
        "disk resource limit alarm cleared on node rabbit@c1",
        {
            "rabbitmq.alarm": {"type": "disk", "state": "cleared"},
            "event.action": "alarm_cleared",
            "tags": ["disk_alarm"],
        },
    ),
    ("Server startup complete; 3 plugins started.", {"event.action": "startup_complete"}),
]


def _as_every_format(msg: str) -> dict[str, bytes]:
    lines = msg.split("\n")
    return {
        "3.9+ text": b"".join(rabbit_line(line) for line in lines),
        "3.7 lager": ("2019-04-03 11:13:15.076 [info] <0.8.0> " + msg + "\n").encode(),
        "3.6 report": ("=INFO REPORT==== 8-Mar-2017::14:12:05 ===\n" + msg + "\n\n").encode(),
        "3.9+ json": json.dumps(
            {"time": "2026-11-24 10:00:00.000001+00:00", "level": "info", "msg": msg, "pid": C}
        ).encode()
        + b"\n",
    }


@pytest.mark.parametrize(("msg", "fields"), WORDINGS, ids=[w[0][:40] for w in WORDINGS])
def test_every_wording_gives_every_field_in_every_format(msg: str, fields: dict[str, Any]) -> None:
    for fmt, raw in _as_every_format(msg).items():
        for parser in ("rabbitmq_json" if fmt.endswith("json") else "rabbitmq", "auto"):
            (doc,) = documents(raw, parser)
            assert doc["message"] == msg, (fmt, parser)
            for field, value in fields.items():
                got = tags(doc) if field == "tags" else get(doc, field)
                assert got == value, (fmt, parser, field, doc)
            for side in ("source", "destination"):
                if get(doc, f"{side}.ip") is not None:
                    ipaddress.ip_address(get(doc, f"{side}.ip"))


def test_the_wording_table_covers_every_pattern_the_parsers_claim() -> None:
    patterns = {
        name: value
        for name, value in vars(rabbitmq_messages).items()
        if isinstance(value, re.Pattern) and name[0] != "_"
    }
    assert len(patterns) >= 10
    for name, pattern in patterns.items():
        assert any(pattern.search(msg) for msg, _ in WORDINGS), name


def test_refused_logins_captured_from_the_local_rabbitmq() -> None:
    """Captured from the RabbitMQ 3.10.8 running here: `guest` connecting over the host's IPv4 and
    IPv6 addresses (not loopback) and a wrong password over loopback, with kombu. Each refusal is
    one authentication failure with the user, and every peer is a valid ip without brackets."""
    for parser in ("rabbitmq", "auto"):
        docs = documents(sample("rabbitmq-3.10-auth-field.log"), parser)
        refused = [d for d in docs if "authentication_failure" in tags(d)]
        assert [get(d, "user.name") for d in refused] == ["guest", "nobody", "guest"], parser
        assert all(get(d, "event.outcome") == "failure" for d in refused)
        peers = [get(d, "source.ip") for d in docs if get(d, "source.ip") is not None]
        assert "fd00::2" in peers and "192.0.2.2" in peers and "127.0.0.1" in peers
        for ip in peers:
            ipaddress.ip_address(ip)


@pytest.mark.parametrize(
    ("shown", "level"),
    [("ERRO", "error"), ("ERROR", "error"), ("INFO", "info"), ("WARN", "warning"), ("DBUG", "debug")],
)
def test_upper_case_level_formats(shown: str, level: str) -> None:
    """RabbitMQ 3.9+'s ``log.*.formatter.level_format`` can be ``uc`` or ``uc4``: the level is
    then upper case (``[ERRO]``, ``[INFO]``); the record is parsed all the same."""
    prefix = f"2026-11-25 15:17:42.734387+00:00 [{shown}] <0.7008.0> "
    line = prefix + "PLAIN login refused: user 'x' - invalid credentials\n"
    for parser in ("rabbitmq", "auto"):
        (doc,) = documents(line.encode(), parser)
        assert get(doc, "log.level") == level, parser
        assert "unparsed" not in tags(doc)
        assert get(doc, "user.name") == "x"
    (doc,) = documents(
        b'{"time":"2026-11-25 15:17:42.734387+00:00","level":"ERRO","msg":"boom","pid":"<0.1.0>"}\n',
        "rabbitmq_json",
    )
    assert get(doc, "log.level") == "error"
