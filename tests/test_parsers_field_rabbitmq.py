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

import json
from typing import Any

import pytest

from tests.support.docs import get
from tests.test_parsers import documents, sample


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
