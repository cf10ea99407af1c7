"""Bulk request bodies, encoded by hand with orjson: pure functions.

Why not ``helpers.bulk``: it serialises each action and document through the client's generic
serializer and holds Python dicts until the request is built. We write the NDJSON bytes once,
keep them (a retry or a dead-letter entry reuses them), and hand the client ready bytes.

Every document is sent with ``create`` and a deterministic ``_id``: a document indexed before a
crash and sent again after it is refused with 409, which counts as indexed. That is what makes the
pipeline exactly-once end to end.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from typing import Any, NamedTuple

import orjson

ECS_VERSION = "8.11.0"


class IndexNaming:
    """``data_stream``: ``logs-{dataset}-{namespace}``; ``daily_index``: the same plus ``-YYYY.MM.DD``.

    Also owns the encoded ``create`` action prefix per index name, so the per-document work is
    one dictionary lookup and one concatenation.
    """

    def __init__(self, mode: str, namespace: str = "default", prefix: str = "logs") -> None:
        self.mode = mode
        self.namespace = namespace
        self.prefix = prefix
        self._names: dict[tuple[str, str], str] = {}
        self._actions: dict[str, bytes] = {}

    def index(self, dataset: str, timestamp: str) -> str:
        day = timestamp[:10] if self.mode != "data_stream" else ""
        name = self._names.get((dataset, day))
        if name is None:
            base = f"{self.prefix}-{dataset}-{self.namespace}"
            if self.mode == "data_stream":
                name = base
            else:
                valid = len(day) == 10 and day[4] == "-" and day[7] == "-"
                name = f"{base}-{day.replace('-', '.') if valid else 'unknown'}"
            if len(self._names) > 10_000:  # bounded: a file with garbage dates cannot grow it forever
                self._names.clear()
            self._names[(dataset, day)] = name
        return name

    def action_prefix(self, index: str) -> bytes:
        prefix = self._actions.get(index)
        if prefix is None:
            prefix = self._actions[index] = b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":"'
        return prefix


class Item(NamedTuple):
    """One document ready to send: action line and source line (both ending in \\n), and the
    tailer batch its acknowledgement belongs to. A tuple: there are 100,000 of them a second."""

    body: bytes
    batch_seq: int


class DocumentTooDeep(ValueError):
    """A document nested deeper than orjson encodes (254 levels), when the caller asked to hear it:
    it has the record's text and ships that instead (see ``Shipping.items``)."""


def encode_document(
    doc: dict[str, Any], problems: Counter[str] | None = None, raise_too_deep: bool = False
) -> bytes:
    """One JSON object, never an exception (but DocumentTooDeep if ``raise_too_deep``).

    orjson for speed. What orjson refuses (lone surrogates, integers beyond 64 bits, keys of odd
    types) goes through the stdlib, which escapes surrogates and writes big integers. A document
    even that cannot write (nesting beyond Python's recursion limit, NaN next to a big integer,
    objects whose ``str`` raises) is rebuilt from plain values, cut at :data:`MAX_ENCODE_DEPTH`
    and tagged ``encode_error`` (tallied in ``problems``).
    """
    try:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except Exception as exc:  # any failure: the slow paths below never raise
        if raise_too_deep and "ecursion" in str(exc):
            raise DocumentTooDeep(str(exc)) from None
        return _encode_slowly(doc, problems)


#: Nesting kept by the last-resort encoding; deeper values become a marker string.
MAX_ENCODE_DEPTH = 64
_CUT = "<cut: nested too deep>"


def _encode_slowly(doc: dict[str, Any], problems: Counter[str] | None) -> bytes:
    with contextlib.suppress(Exception):  # RecursionError, NaN, a str() that raised: see below
        return json.dumps(
            doc, default=_text, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode()
    if problems is not None:
        problems["encode_error"] += 1
    try:
        plain = _plain(doc, 0)
        if not isinstance(plain, dict):
            plain = {"message": _text(plain)}
        tags = plain.get("tags")
        plain["tags"] = [*(tags if isinstance(tags, list) else []), "encode_error"]
        return json.dumps(plain, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    except Exception:
        return b'{"message":"<unencodable document>","tags":["unparsed","encode_error"]}'


def _plain(value: Any, depth: int) -> Any:
    """JSON-safe copy: str keys, finite floats, plain containers, nothing deeper than the limit."""
    if depth > MAX_ENCODE_DEPTH:
        return _CUT
    if isinstance(value, dict):
        return {_text(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    return _text(value)


def _text(value: Any) -> str:
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def make_item(
    naming: IndexNaming,
    doc_id: str,
    index: str,
    doc: dict[str, Any],
    batch_seq: int,
    data_stream: tuple[str, str] | None,
    problems: Counter[str] | None = None,
) -> Item:
    """Ids are ``<hex>-<hex>`` (record_id), so they need no JSON escaping in the action line."""
    if data_stream is not None:
        doc["data_stream"] = {"type": "logs", "dataset": data_stream[0], "namespace": data_stream[1]}
    return Item(
        naming.action_prefix(index) + doc_id.encode() + b'"}}\n' + encode_document(doc, problems) + b"\n",
        batch_seq,
    )


def record_item(
    naming: IndexNaming,
    doc_id: str,
    index: str,
    doc: dict[str, Any],
    batch_seq: int,
    data_stream: tuple[str, str] | None,
    problems: Counter[str],
) -> Item:
    """:func:`make_item` for a document parsed from a log record, the hot path (orjson inline, one
    call per record). A document nested deeper than orjson encodes raises DocumentTooDeep: the
    caller has the record and ships its text instead."""
    if data_stream is not None:
        doc["data_stream"] = {"type": "logs", "dataset": data_stream[0], "namespace": data_stream[1]}
    try:
        body = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except Exception:
        body = encode_document(doc, problems, raise_too_deep=True)
    return Item(naming.action_prefix(index) + doc_id.encode() + b'"}}\n' + body + b"\n", batch_seq)


def item_parts(item: Item) -> tuple[str, str, Any]:
    """``(_id, _index, document)`` of an encoded item (for the dead-letter file: the rare path)."""
    action, _, source = item.body.partition(b"\n")
    op = orjson.loads(action)["create"]
    try:
        doc = orjson.loads(source)
    except orjson.JSONDecodeError:
        doc = source.decode("utf-8", "replace")
    return op["_id"], op["_index"], doc
