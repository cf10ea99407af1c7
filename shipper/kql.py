"""A small KQL (Kibana Query Language) to Elasticsearch query translator.

Covers what our saved searches use, so the tests can run each one against a real server and
``shipper search --kql`` accepts the same syntax as Kibana: ``field: value``, ``field: "a phrase"``,
``field: (a or b)``, ``field: *``, ``field > 10`` (``>= < <=``), ``and``, ``or``, ``not``, parentheses.
Keyword fields become ``term`` queries, text fields ``match_phrase``, as Kibana does.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ShipperError
from .sink.templates import FIELDS

TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(>=|<=|>|<|:)|([^\s()":<>]+))')


class KqlError(ShipperError):
    """The query is not valid KQL (or uses syntax this translator does not cover)."""


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise KqlError(f"cannot read KQL at {text[pos : pos + 20]!r}")
        out.append(m.group(0).strip())
        pos = m.end()
    return [t for t in out if t]


def _value_query(field: str, value: str) -> dict[str, Any]:
    quoted = value.startswith('"')
    if quoted:
        value = value[1:-1].replace('\\"', '"')
    if value == "*" and not quoted:
        return {"exists": {"field": field}}
    kind = FIELDS.get(field, {}).get("type", "keyword")
    if not quoted and "*" in value:
        return {"wildcard": {field: value}}
    if kind == "text":
        return {"match_phrase": {field: value}}
    if kind in ("long", "double", "float", "integer"):
        try:
            return {"term": {field: float(value) if "." in value else int(value)}}
        except ValueError:
            raise KqlError(f"{field} is numeric, got {value!r}") from None
    if kind == "boolean":
        return {"term": {field: value.lower() == "true"}}
    return {"term": {field: value}}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise KqlError("unexpected end of query")
        self.i += 1
        return tok

    def parse(self) -> dict[str, Any]:
        q = self.or_expr(None)
        if self.peek() is not None:
            raise KqlError(f"unexpected {self.peek()!r}")
        return q

    def or_expr(self, field: str | None) -> dict[str, Any]:
        parts = [self.and_expr(field)]
        while (self.peek() or "").lower() == "or":
            self.take()
            parts.append(self.and_expr(field))
        return parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}

    def and_expr(self, field: str | None) -> dict[str, Any]:
        parts = [self.not_expr(field)]
        while (self.peek() or "").lower() == "and":
            self.take()
            parts.append(self.not_expr(field))
        return parts[0] if len(parts) == 1 else {"bool": {"filter": parts}}

    def not_expr(self, field: str | None) -> dict[str, Any]:
        if (self.peek() or "").lower() == "not":
            self.take()
            return {"bool": {"must_not": [self.not_expr(field)]}}
        return self.primary(field)

    def primary(self, field: str | None) -> dict[str, Any]:
        tok = self.take()
        if tok == "(":
            q = self.or_expr(field)
            if self.take() != ")":
                raise KqlError("missing )")
            return q
        if field is not None:  # inside field: ( ... )
            return _value_query(field, tok)
        op = self.peek()
        if op == ":":
            self.take()
            if self.peek() == "(":
                self.take()
                q = self.or_expr(tok)
                if self.take() != ")":
                    raise KqlError("missing )")
                return q
            return _value_query(tok, self.take())
        if op in (">", ">=", "<", "<="):
            self.take()
            bound = self.take()
            key = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[op]
            return {"range": {tok: {key: bound.strip('"')}}}
        return {"multi_match": {"query": tok.strip('"'), "type": "phrase", "fields": ["message"]}}


def to_query(kql: str) -> dict[str, Any]:
    """Elasticsearch query DSL for a KQL string; empty means everything."""
    if not kql.strip():
        return {"match_all": {}}
    return _Parser(kql).parse()


def fields_of(kql: str) -> set[str]:
    """The field names a KQL query refers to (for checking them against the mapping)."""
    toks = _tokens(kql)
    return {toks[i] for i in range(len(toks) - 1) if toks[i + 1] in (":", ">", ">=", "<", "<=")}
