"""Issue 12, item 10: every record becomes exactly one valid JSON line.

Hypothesis drives messages (text, dicts with any keys), extras, arguments and exceptions through
the configurator's formatter behind a real handler; every line is parsed with a strict parser (no
NaN/Infinity, no duplicate keys), and no "--- Logging error ---" may happen."""

from __future__ import annotations

import io
import logging
import math
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.logconfig import EcsJsonFormatter
from shipper.logconfig.formatter import FORMAT_ERROR_TAG
from tests.support.docs import strict_loads


class Weird:
    """An object whose str and repr both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of the exception failed")


class BadReprError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")


def deep(n: int) -> Any:
    value: Any = 0
    for _ in range(n):
        value = {"k": [value]}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**300),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.builds(lambda: 10**5000),  # not even str() can show it
    st.text(),
    st.sampled_from(["\udcff", "\ud800x", "\x00\x1b[2J", "a\nb"]),
    st.binary(max_size=10),
    st.builds(Weird),
    st.builds(object),
)
keys = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
    st.tuples(st.integers()),
    st.sampled_from(["message", "log", "log.level", "error", "error.stack_trace", "labels", "labels.a.b",
                     "a..b", ".", "", "@timestamp", "exc_info", "stack_info", "_id", "_index", "1", 1]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
) | st.sampled_from([deep(300), deep(2000)])
exceptions = st.sampled_from([None, ValueError("v"), BadStrError(), BadReprError(), KeyError(Weird())])


def make_record(msg: Any, args: Any, extra: dict[Any, Any], exc: BaseException | None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException:
            exc_info = sys.exc_info()
    logger = logging.getLogger("hostile")
    return logger.makeRecord("hostile", logging.ERROR, "/f.py", 1, msg, args, exc_info, extra=extra or None)


def emit(record: logging.LogRecord, **options: Any) -> tuple[list[str], list[logging.LogRecord]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EcsJsonFormatter(hostname="h", **options))
    errors: list[logging.LogRecord] = []
    handler.handleError = errors.append  # type: ignore[method-assign]
    handler.handle(record)
    return stream.getvalue().split("\n"), errors


def check(record: logging.LogRecord, **options: Any) -> dict[str, Any]:
    lines, errors = emit(record, **options)
    assert errors == [], "--- Logging error ---"
    assert len(lines) == 2 and lines[1] == "", lines
    doc = strict_loads(lines[0])
    assert isinstance(doc, dict) and "@timestamp" in doc and "message" in doc
    error = doc.get("error")
    if isinstance(error, dict) and error.get("stack_trace") is not None:
        assert isinstance(error["stack_trace"], str)
    labels = doc.get("labels")
    if labels is not None:
        assert isinstance(labels, dict)
        for key, value in labels.items():
            assert key and not any(c in key for c in ".*\\ \n"), key
            assert not isinstance(value, dict)
    return doc  # type: ignore[no-any-return]


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(st.text(), st.dictionaries(keys, values, max_size=6), values),
    st.one_of(st.none(), st.tuples(values), st.tuples(values, values), st.dictionaries(st.text(), values)),
    st.dictionaries(st.one_of(keys.filter(lambda k: k not in ("message", "asctime")), st.text()), values),
    exceptions,
)
def test_every_record_is_one_valid_json_line(msg: Any, args: Any, extra: dict[Any, Any], exc: Any) -> None:
    try:
        record = make_record(msg, args, extra, exc)
    except KeyError:  # makeRecord refuses to overwrite record attributes: not a formatter concern
        return
    check(record)


@pytest.mark.parametrize(
    ("msg", "args", "extra"),
    [
        ("x", None, {1: "non-string extra key"}),
        ({1: "a", (2,): "b", None: "c"}, None, {}),
        ({"n": 2**80, "nan": math.nan}, None, {}),
        ({"n": 2**80, "inf": [math.inf, -math.inf]}, None, {}),
        ("%s %s", ("only one",), {}),
        ("%d", ("not a number",), {}),
        (Weird(), None, {}),
        ("x", None, {"deep": deep(5000)}),
        ({"a": 1, 1: 2, "1": 3}, None, {}),
        ("x", None, {"labels": {"a.b": 1, "c*d": 2, "e\\f": 3, "g h": 4, "n": {"m.o": 5}}}),
        ("x", None, {"labels.x.y": "dotted extra"}),
        ("x", None, {"labels": "not a mapping"}),
        ("x", None, {"error": {"stack_trace": ["line 1", "line 2"]}}),
        ({"exc_info": ["a", "b"]}, None, {}),
    ],
)
def test_known_record_killers(msg: Any, args: Any, extra: dict[Any, Any]) -> None:
    check(make_record(msg, args, extra, None))


def test_exception_whose_str_raises_keeps_its_record() -> None:
    doc = check(make_record("failed", None, {}, BadStrError()))
    assert doc["message"] == "failed"
    assert doc["error"]["type"].endswith("BadStrError") and doc["error"]["stack_trace"].startswith(
        "Traceback"
    )


def test_big_int_with_nan_is_valid_json() -> None:
    doc = check(make_record({"n": 2**80, "nan": math.nan}, None, {}, None))
    assert doc["n"] == 2**80 and doc["nan"] is None


def test_a_failing_format_string_is_kept_and_tagged() -> None:
    doc = check(make_record("%d items", ("many",), {}, None))
    assert doc["tags"] == [FORMAT_ERROR_TAG]
    assert "%d items" in doc["message"] and "many" in doc["message"]
    assert "TypeError" in doc["event"]["reason"]


def test_labels_are_flat_and_sanitized() -> None:
    doc = check(make_record("x", None, {"labels": {"a.b": 1, "c*d": 2, "n": {"m.o": 5}}}, None))
    assert doc["labels"] == {"a_b": 1, "c_d": 2, "n_m_o": 5}
    doc = check(make_record("x", None, {}, None), static_fields={"labels.env": "prod"})
    assert doc["labels"] == {"env": "prod"}


def test_dict_message_with_a_message_key() -> None:
    doc = check(make_record({"message": "from the dict", "k": 1}, None, {}, None))
    assert doc["message"] == "from the dict" and doc["k"] == 1


def test_stack_trace_stays_a_string() -> None:
    doc = check(make_record("x", None, {"error": {"stack_trace": ["line 1", "line 2"]}}, None))
    assert doc["error"]["stack_trace"] == "line 1\nline 2"


def test_defaults_and_static_fields_are_honoured() -> None:
    doc = check(
        make_record("x", None, {"team": "from extra"}, None),
        defaults={"team": "default team", "region": "eu"},
        static_fields={"app.version": "1.2", "log.level": "not overridden"},
    )
    assert doc["team"] == "from extra" and doc["region"] == "eu"
    assert doc["app"] == {"version": "1.2"} and doc["log"]["level"] == "error"


@pytest.mark.parametrize(
    "option",
    [
        {"rename_fields": {"levelname": "level"}},
        {"rename_fields_keep_missing": True},
        {"timestamp": True},
        {"prefix": "LOG: "},
        {"json_indent": True},
        {"exc_info_as_array": True},
        {"stack_info_as_array": True},
    ],
)
def test_options_that_cannot_hold_are_refused(option: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="does not support"):
        EcsJsonFormatter(**option)


def test_reserved_attrs_are_honoured() -> None:
    from pythonjsonlogger.core import RESERVED_ATTRS

    doc = check(
        make_record("x", None, {"secret": "s", "kept": 1}, None), reserved_attrs=[*RESERVED_ATTRS, "secret"]
    )
    assert "secret" not in doc and doc["kept"] == 1
