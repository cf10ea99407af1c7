"""Parsers: Celery text and JSON lines, RabbitMQ text (every version) and JSON, into ECS documents.

Each format module is pure (no I/O): a continuation rule for multi-line grouping and
``parse(text, ctx) -> dict``. :func:`build_document` adds the fields every document carries.
"""

from .base import Document, ParseContext, Parser, TimeConverter, decode
from .document import PARSERS, InputParsing, build_document, salvage_document, utc_now_iso

__all__ = [
    "PARSERS",
    "Document",
    "InputParsing",
    "ParseContext",
    "Parser",
    "TimeConverter",
    "build_document",
    "decode",
    "salvage_document",
    "utc_now_iso",
]
