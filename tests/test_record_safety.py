"""No exception raised while decoding, parsing or encoding ONE record may escape that record.

Direct calls first (deep JSON, what the encoder cannot write), then hypothesis drives arbitrary
bytes and hostile JSON through the whole per-record path of every parser (build_document, the
index name, make_item) and through the pipeline's Shipping.items: never an exception, always one
valid JSON action line and one valid JSON source line per record.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.config import InputConfig, parse_config
from shipper.parse import PARSERS, InputParsing, ParseContext, TimeConverter, build_document
from shipper.parse.json_lines import ECS_ROOTS
from shipper.pipeline import Shipping
from shipper.sink.encode import IndexNaming, encode_document, make_item
from shipper.source import Record, SourceRef

INGEST = "2026-11-24T12:00:00.000Z"
SOURCE = SourceRef("in", "k3y", "/var/log/celery/w1.log")
DEEP_ARRAY = b'{"message": "deep", "data": ' + b"[" * 1020 + b"]" * 1020 + b"}"
DEEP_OBJECT = b'{"message": "deep", "a": ' + b'{"a": ' * 600 + b"1" + b"}" * 600 + b"}"


def parsing(parser: str) -> InputParsing:
    return InputParsing.from_config(InputConfig(id="in", paths=("x",), parser=parser), hostname="h")  # type: ignore[arg-type]


def strict_json(line: bytes) -> Any:
    """json.loads that also refuses NaN/Infinity (not JSON, Elasticsearch refuses them)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


def assert_one_item(body: bytes) -> dict[str, Any]:
    action, source, tail = body.split(b"\n")
    assert tail == b""
    assert set(strict_json(action)) == {"create"}
    doc = strict_json(source)
    assert isinstance(doc, dict)
    return doc


def shipping_for(parser: str, tmp: Path, mode: str = "data_stream") -> Shipping:
    config = parse_config(
        {"data_dir": str(tmp), "inputs": [{"id": "in", "paths": ["x"], "parser": parser}]}, env={}
    )
    return Shipping(config, lambda body: ({}, 0), mode, lambda seq: None, threading.Event())


@pytest.mark.parametrize("parser", ["celery_json", "rabbitmq_json", "auto"])
@pytest.mark.parametrize(
    "line",
    [
        DEEP_ARRAY,
        DEEP_OBJECT,
        b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    ],
    ids=["array-1020", "object-600", "array-300", "array-2000"],
)
def test_deep_json_is_shipped_as_text_flagged_and_counted(parser: str, line: bytes, tmp_path: Path) -> None:
    """Deeper than the encoder goes (254) or than the decoder goes (1,024): the record's text,
    tagged json_too_deep, counted; the records around it are untouched."""
    shipping = shipping_for(parser, tmp_path)
    before = b'{"message": "before", "msg": "before"}'
    records = [Record(0, 22, before), Record(22, 23 + len(line), line), Record(100_000, 100_022, before)]
    items = shipping.items(1, SOURCE, records)
    docs = [assert_one_item(i.body) for i in items]
    assert docs[1]["message"] == line.decode()
    assert docs[1]["tags"] == ["unparsed", "json_too_deep"]
    assert docs[1]["log"]["offset"] == 22 and docs[1]["event"]["dataset"]
    assert docs[0]["message"] == docs[2]["message"] == "before"
    assert shipping.stats.flagged_json_too_deep == 1


def test_direct_calls_never_raise_on_deep_json() -> None:
    """Without the pipeline's handling, build_document and make_item still give one valid line."""
    for parser in sorted(PARSERS):
        ctx = ParseContext(TimeConverter("UTC"), INGEST)
        for line in (DEEP_ARRAY, DEEP_OBJECT):
            doc_id, dataset, doc = build_document(
                Record(0, len(line) + 1, line), SOURCE, parsing(parser), ctx
            )
            item = make_item(
                IndexNaming("data_stream"), doc_id, "logs-x-default", doc, 1, (dataset, "default")
            )
            assert_one_item(item.body)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "doc",
    [
        {"m": "lone \udcff surrogate"},
        {"n": 2**80},
        {"n": 2**80, "f": float("nan")},
        {"deep": json.loads("[" * 900 + "]" * 900)},
        {"obj": Unprintable(), "n": 2**70},
        {1: "int key", (1, 2): "tuple key", "x": 2**65},
    ],
    ids=["surrogate", "bigint", "bigint+nan", "deep", "unprintable", "keys"],
)
def test_encode_document_never_raises_and_writes_json(doc: dict[str, Any]) -> None:
    problems: Counter[str] = Counter()
    encoded = encode_document(doc, problems)
    assert isinstance(strict_json(encoded), dict)


def test_encode_keeps_what_it_can_and_flags_the_rest() -> None:
    problems: Counter[str] = Counter()
    deep: Any = []
    for _ in range(1100):
        deep = [deep]
    out = strict_json(encode_document({"message": "kept", "tags": ["x"], "deep": deep}, problems))
    assert out["message"] == "kept" and out["tags"] == ["x", "encode_error"]
    assert problems == Counter({"encode_error": 1})
    assert strict_json(encode_document({"n": 2**80}))["n"] == 2**80  # the stdlib path, not flagged


# ----------------------------------------------------------------------------- hypothesis

SPECIAL_KEYS = sorted(
    ECS_ROOTS | {"_id", "_index", "_source", "data_stream", "@timestamp", "pid", "msg", "time"}
)
TEXT = st.text(max_size=20)
NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200).map(str),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "1E-400", "0.1e99999"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
STRING_TEXT = st.one_of(
    TEXT.map(lambda t: json.dumps(t)),
    st.sampled_from(
        ['"\\ud800"', '"\\udc00x"', '"\\ud800\\udc00"', '"\\u0000"', '"a.b"', '"2026-11-24T10:00:00Z"']
    ),
)
KEY_TEXT = st.one_of(
    st.sampled_from(SPECIAL_KEYS), TEXT, st.sampled_from(["a.b", "log.level", "@timestamp.x"])
).map(json.dumps)


def deep_text(depth: int, opener: str) -> str:
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"k": ' * depth + "1" + "}" * depth


JSON_VALUE = st.recursive(
    st.one_of(NUMBER_TEXT, STRING_TEXT, st.sampled_from(["true", "false", "null"])),
    lambda children: st.one_of(
        st.lists(children, max_size=6).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(KEY_TEXT, children), max_size=6).map(
            lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
        ),
        st.tuples(st.integers(1, 1100), st.sampled_from(["[", "{"])).map(lambda a: deep_text(*a)),
    ),
    max_leaves=30,
)
JSON_OBJECT_LINE = st.lists(st.tuples(KEY_TEXT, JSON_VALUE), max_size=10).map(
    lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
)
ECS_LIKE_LINE = st.tuples(JSON_VALUE, JSON_VALUE, st.lists(st.tuples(KEY_TEXT, JSON_VALUE), max_size=4)).map(
    lambda t: (
        '{"@timestamp":"2026-11-24T10:00:00.000Z","ecs":{"version":"8"},"log":{"level":"info","x":'
        + t[0]
        + '},"message":"m","extra":'
        + t[1]
        + "".join(f",{k}:{v}" for k, v in t[2])
        + "}"
    )
)
PREFIXES = st.sampled_from(
    [
        "",
        "[2026-11-24 11:48:19,985: INFO/MainProcess] ",
        "[2026-11-24 11:48:19,985: ERROR/ForkPoolWorker-1] "
        "Task t.x[1f0c6f0e-aaaa-bbbb-cccc-1234567890ab] raised: ",
        "2026-11-24 11:48:19.985052+00:00 [info] <0.223.0> ",
        "2018-11-22 10:44:33.654 [info] <0.620.0> ",
        "=INFO REPORT==== 8-Mar-2017::14:12:05 ===\n",
    ]
)
RECORD_BYTES = st.one_of(
    st.binary(max_size=300),
    st.tuples(PREFIXES, JSON_OBJECT_LINE).map(lambda t: (t[0] + t[1]).encode("utf-8", "surrogatepass")),
    ECS_LIKE_LINE.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(PREFIXES, st.text(max_size=200)).map(lambda t: (t[0] + t[1]).encode("utf-8", "surrogatepass")),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=RECORD_BYTES,
    parser=st.sampled_from(sorted(PARSERS)),
    mode=st.sampled_from(["data_stream", "daily_index"]),
    flags=st.integers(0, 3),
    offset=st.integers(0, 2**40),
)
def test_every_parser_every_record_one_valid_json_line(
    data: bytes, parser: str, mode: str, flags: int, offset: int
) -> None:
    """The per-record path without any safety net around it: build_document, the index name and
    make_item themselves never raise."""
    ip = parsing(parser)
    ctx = ParseContext(ip.times, INGEST)
    naming = IndexNaming(mode, "default")
    doc_id, dataset, doc = build_document(
        Record(offset, offset + len(data) + 1, data, flags), SOURCE, ip, ctx
    )
    index = naming.index(dataset, doc["@timestamp"])
    ds = (dataset, "default") if mode == "data_stream" else None
    shipped = assert_one_item(make_item(naming, doc_id, index, doc, 7, ds, ctx.problems).body)
    assert isinstance(shipped["@timestamp"], str) and shipped["log"]["offset"] == offset
    assert "_id" not in shipped and "_index" not in shipped
    if mode == "data_stream":
        assert shipped["data_stream"] == {"type": "logs", "dataset": dataset, "namespace": "default"}


@pytest.fixture(scope="module")
def shippers(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Shipping]:
    tmp = Path(tmp_path_factory.mktemp("shipping"))
    return {(p, m): shipping_for(p, tmp, m) for p in sorted(PARSERS) for m in ("data_stream", "daily_index")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(RECORD_BYTES, min_size=1, max_size=8),
    parser=st.sampled_from(sorted(PARSERS)),
    mode=st.sampled_from(["data_stream", "daily_index"]),
)
def test_shipping_items_one_per_record_never_salvaged(
    shippers: dict[tuple[str, str], Shipping], records: list[bytes], parser: str, mode: str
) -> None:
    """The pipeline's own per-record loop: one item per record, in order, and the last resort for
    bugs (record_error) is never needed for any of these inputs."""
    shipping = shippers[(parser, mode)]
    before = shipping.stats.flagged_record_error
    recs = []
    offset = 0
    for data in records:
        recs.append(Record(offset, offset + len(data) + 1, data))
        offset += len(data) + 1
    items = shipping.items(3, SOURCE, recs)
    assert len(items) == len(recs)
    for item, rec in zip(items, recs, strict=True):
        assert assert_one_item(item.body)["log"]["offset"] == rec.offset
    assert shipping.stats.flagged_record_error == before


def test_a_record_that_breaks_everything_is_salvaged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """If the per-record path raises anyway (a bug), the record goes out as flagged text."""
    import shipper.pipeline as pipeline

    config = parse_config({"data_dir": str(tmp_path), "inputs": [{"id": "in", "paths": ["x"]}]}, env={})
    shipping = Shipping(config, lambda body: ({}, 0), "daily_index", lambda seq: None, threading.Event())

    def broken(record: Record, *args: Any) -> Any:
        if b"bad" in record.data:
            raise RecursionError("maximum recursion depth exceeded")
        return build_document(record, *args)

    monkeypatch.setattr(pipeline, "build_document", broken)
    items = shipping.items(1, SOURCE, [Record(0, 5, b"good"), Record(5, 9, b"bad"), Record(9, 14, b"good")])
    docs = [assert_one_item(i.body) for i in items]
    assert docs[1]["message"] == "bad" and docs[1]["tags"] == ["unparsed", "record_error"]
    assert [d["log"]["offset"] for d in docs] == [0, 5, 9]
    assert shipping.stats.flagged_record_error == 1
