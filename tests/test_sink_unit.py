"""Direct tests of the sink's pure parts: outcome classification, encoding, naming, client settings,
templates, and the worker wire format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from shipper.config import ElasticsearchConfig
from shipper.errors import ConfigError
from shipper.sink.bulk import gzip_body
from shipper.sink.client import client_kwargs
from shipper.sink.encode import IndexNaming, encode_document, item_parts, make_item
from shipper.sink.outcome import classify, classify_status
from shipper.sink.templates import FIELDS, index_template, properties
from shipper.source import Batch, Record, SourceRef
from shipper.workers import pack, unpack


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (201, "indexed"),
        (200, "indexed"),
        (409, "duplicate"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (400, "dead"),
        (404, "dead"),
        (413, "dead"),
    ],
)
def test_classify_status(status: int, kind: str) -> None:
    assert classify_status(status) == kind


def test_classify_mixed_response_checks_every_item() -> None:
    resp = {
        "errors": True,
        "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409}},
            {"create": {"status": 429}},
            {"create": {"status": 400, "error": {"type": "document_parsing_exception"}}},
            {"create": {"status": 503}},
        ],
    }
    c = classify(resp, 6)  # one more item than the response has: it must be retried, not assumed done
    assert c.indexed == [0] and c.duplicates == [1] and c.retry == [2, 4, 5]
    assert c.dead == [(3, 400, {"type": "document_parsing_exception"})]


def test_classify_fast_path_and_garbage() -> None:
    assert classify({"errors": False, "items": [{"create": {"status": 201}}] * 3}, 3).indexed == [0, 1, 2]
    assert classify("not json", 2).retry == [0, 1]
    assert classify({"errors": False, "items": []}, 2).retry == [0, 1]


def test_index_naming() -> None:
    daily = IndexNaming("daily_index", "prod")
    assert daily.index("celery.worker", "2026-11-24T10:00:00.000Z") == "logs-celery.worker-prod-2026.11.24"
    assert daily.index("celery.worker", "garbage") == "logs-celery.worker-prod-unknown"
    assert (
        IndexNaming("data_stream").index("rabbitmq.log", "2026-11-24T10:00:00Z")
        == "logs-rabbitmq.log-default"
    )


def test_items_are_valid_ndjson_and_round_trip() -> None:
    naming = IndexNaming("data_stream")
    doc = {"@timestamp": "2026-11-24T10:00:00.000Z", "message": 'quote " newline \n', "big": 2**70}
    item = make_item(naming, "abc-1f", "logs-celery.worker-default", doc, 7, ("celery.worker", "default"))
    action, source, tail = item.body.split(b"\n")
    assert tail == b""
    assert json.loads(action) == {"create": {"_index": "logs-celery.worker-default", "_id": "abc-1f"}}
    assert json.loads(source)["data_stream"] == {
        "type": "logs",
        "dataset": "celery.worker",
        "namespace": "default",
    }
    assert item.batch_seq == 7
    doc_id, index, parsed = item_parts(item)
    assert (doc_id, index, parsed["message"]) == (
        "abc-1f",
        "logs-celery.worker-default",
        'quote " newline \n',
    )


def test_encode_falls_back_for_what_orjson_refuses() -> None:
    assert json.loads(encode_document({"m": "lone \udcff surrogate"}))["m"] == "lone \udcff surrogate"
    assert json.loads(encode_document({"n": 2**80}))["n"] == 2**80


def test_gzip_body_is_standard_gzip() -> None:
    body = b'{"create":{}}\n{"a":1}\n' * 1000
    assert gzip.decompress(gzip_body(body)) == body


def test_client_settings_secure_by_default(tmp_path: Path) -> None:
    kw = client_kwargs(ElasticsearchConfig())
    assert kw["verify_certs"] is True and kw["max_retries"] == 0 and kw["http_compress"] is False
    assert "basic_auth" not in kw and "api_key" not in kw
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    kw = client_kwargs(
        ElasticsearchConfig(
            hosts=("https://es:9200",), username="elastic", password_file=str(secret), ca_file="/etc/ca.pem"
        )
    )
    assert kw["basic_auth"] == ("elastic", "s3cret") and kw["ca_certs"] == "/etc/ca.pem"
    assert client_kwargs(ElasticsearchConfig(api_key="k"))["api_key"] == "k"
    assert client_kwargs(ElasticsearchConfig(username="", password=""))  # empty env values mean "not set"


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        (ElasticsearchConfig(api_key="k", username="u", password="p"), "output.elasticsearch.api_key"),
        (ElasticsearchConfig(username="u"), "output.elasticsearch.username"),
        (ElasticsearchConfig(ca_file="/ca.pem"), "output.elasticsearch.ca_file"),
    ],
)
def test_client_settings_errors_name_the_key(cfg: ElasticsearchConfig, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        client_kwargs(cfg)
    assert info.value.path == key


def test_templates_map_every_field_and_data_stream_mode() -> None:
    props = properties()
    task = props["celery"]["properties"]["task"]["properties"]
    assert task["id"] == {"type": "keyword", "ignore_above": 1024}
    assert props["@timestamp"] == {"type": "date"}
    ds = index_template("celery.worker", "data_stream", ilm_policy="p")
    assert ds["data_stream"] == {} and ds["priority"] > 500
    assert ds["template"]["settings"]["index.lifecycle.name"] == "p"
    daily = index_template("celery.worker", "daily_index", data_stream_fields=False)
    assert "data_stream" not in daily and "data_stream" not in daily["template"]["mappings"]["properties"]
    assert "celery.task.state" in FIELDS and "rabbitmq.alarm.type" in FIELDS


def test_worker_wire_format_round_trips() -> None:
    recs = (Record(0, 6, b"first", 0), Record(6, 20, b"multi\nline \xff", 3), Record(20, 21, b"", 0))
    batch = Batch(SourceRef("celery", "key1", "/var/log/a.log"), 0, 21, recs, 42)
    seq, src, got = unpack(pack(batch))
    assert seq == 42 and src == batch.source
    assert [(r.offset, r.data, r.flags) for r in got] == [(r.offset, r.data, r.flags) for r in recs]
