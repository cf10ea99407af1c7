"""What every parser shares: the parser descriptor, time conversion, and decoding raw bytes.

Parsers are pure: ``parse(text, ctx) -> dict`` with no I/O and no clock, so the same record always
gives the same document (a re-read after a crash must produce the same thing under the same id).
The one impure input, the ingest time used for a record without a usable timestamp, is passed in
through the context by the caller.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..source.multiline import ContinuationRule

Document = dict[str, Any]


class TimeConverter:
    """Turn local wall-clock timestamps (no offset) into UTC ISO 8601, cached per second.

    Celery's asctime and RabbitMQ <= 3.8 write local time without an offset; the input's
    ``timezone`` says which zone. One conversion per distinct second keeps this off the profile.
    """

    __slots__ = ("_cache_key", "_cache_val", "tz", "utc")

    def __init__(self, timezone: str) -> None:
        name = timezone.upper()
        self.utc = name in ("UTC", "Z", "ETC/UTC")
        if name == "LOCAL":
            self.tz: dt.tzinfo | None = None  # the machine's zone
        elif self.utc:
            self.tz = dt.UTC
        else:
            self.tz = zoneinfo.ZoneInfo(timezone)
        self._cache_key = ""
        self._cache_val = ""

    def local(self, date_time: str, fraction: str) -> str | None:
        """``date_time`` is ``YYYY-MM-DD HH:MM:SS`` (a ``T`` works too); ``fraction`` the digits after
        the separator. Returns ``YYYY-MM-DDTHH:MM:SS.fffZ`` in UTC, or None if it is no real date."""
        if date_time != self._cache_key:
            if self.utc:
                converted = date_time[:10] + "T" + date_time[11:19]
                if not _plausible(converted):
                    return None
            else:
                try:
                    naive = dt.datetime.strptime(date_time[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    return None
                aware = naive.replace(tzinfo=self.tz) if self.tz is not None else naive.astimezone()
                converted = aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._cache_key, self._cache_val = date_time, converted
        return f"{self._cache_val}.{fraction}Z"


_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _plausible(iso: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS`` with every field in range (cheaper than strptime on the hot path)."""
    try:
        month, day = int(iso[5:7]), int(iso[8:10])
        return (
            len(iso) == 19
            and 1 <= month <= 12
            and 1 <= day <= _DAYS[month - 1]
            and int(iso[11:13]) < 24
            and int(iso[14:16]) < 60
            and int(iso[17:19]) < 61
            and iso[:4].isdigit()
        )
    except ValueError:
        return False


def with_offset(date_time: str, fraction: str, offset: str) -> str | None:
    """``2026-11-24 11:48:19`` + ``985052`` + ``+01:00`` -> ``2026-11-24T10:48:19.985052Z``."""
    if offset in ("+00:00", "Z", "-00:00"):
        iso = date_time[:10] + "T" + date_time[11:19]
        return f"{iso}.{fraction}Z" if _plausible(iso) else None
    try:
        aware = dt.datetime.fromisoformat(f"{date_time[:10]}T{date_time[11:19]}{offset}")
    except ValueError:
        return None
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction}Z"


@dataclass(frozen=True)
class ParseContext:
    """Per batch: the time zone of offset-less timestamps, the fallback time, and a tally of the
    records that had to be flagged (the caller adds it to its counters once per batch, so no
    counter is touched per record and the parsers stay free of global state)."""

    times: TimeConverter
    #: ``@timestamp`` for a record whose own timestamp is missing or invalid (ISO, UTC).
    ingest_time: str = ""
    #: Flagged records by reason (``json_too_deep``, ``parser_error``, ``encode_error``, ...).
    problems: Counter[str] = field(default_factory=Counter, compare=False)


@dataclass(frozen=True)
class Parser:
    """A log format: how its records are grouped, and how one record becomes fields."""

    name: str
    dataset: str
    #: Multi-line grouping rule for the tailer; None: every line is a record.
    continues: ContinuationRule | None
    parse: Callable[[str, ParseContext], Document]


def unparsed(text: str, *reasons: str) -> Document:
    """The document for a record no rule understands: shipped as it is, never dropped."""
    return {"message": text, "tags": ["unparsed", *reasons]}


class JsonTooDeep(ValueError):
    """The record is JSON nested deeper than the decoder's limit (1,024 levels)."""


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None if it is not valid JSON or not an object.

    Raises :class:`JsonTooDeep` beyond orjson's nesting limit (``build_document`` ships the line
    as text, tagged ``json_too_deep``). Shallower but still absurd nesting costs nothing here: the
    encoder stops at 254 levels and the record is then shipped the same way (``DocumentTooDeep``
    in sink/encode.py), so the hot path measures nothing.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson's own limit
            raise JsonTooDeep(str(exc)) from None
        return None
    return obj if isinstance(obj, dict) else None


def decode(data: bytes) -> tuple[str, list[str]]:
    """Bytes of a record to text, with tags for what had to be repaired (never raises)."""
    tags: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        tags.append("invalid_utf8")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        tags.append("nul_bytes")
    return text, tags


#: A Python traceback starts at one of these (3.11+ prints an ExceptionGroup as a tree).
_TRACE_HEADS = ("Traceback (most recent call last)", "  + Exception Group Traceback (most recent call last)")
#: CPython's lines between the parts of a chain, at column 0 (indented inside a group's tree).
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


def split_stack_trace(lines: list[str]) -> tuple[str, str | None]:
    """Split continuation lines into (more message, Python traceback) at the traceback's header."""
    for i, line in enumerate(lines):
        if line.startswith(_TRACE_HEADS):
            return "\n".join(lines[:i]), "\n".join(lines[i:]).rstrip("\n")
    return "\n".join(lines), None


def exception_from_trace(trace: str) -> tuple[str | None, str | None]:
    """``(error.type, error.message)`` of the exception that was raised: the LAST one of a chain.

    CPython prints a chain oldest first, each part after a ``During handling of the above
    exception...`` or ``The above exception was the direct cause...`` line at column 0, so the
    raised exception is in the part after the last such line. There, its line is the first one at
    column 0 after the ``Traceback`` header (frames, code, 3.11's ``^^^``/``~~~`` lines and
    ``[Previous line repeated]`` are indented); the lines after it are the rest of a multi-line
    message and 3.11's notes, kept in ``error.message`` (the last line alone may be a note).

    An ExceptionGroup (3.11+) is a tree with ``  | `` margins. The raised exception is the group
    itself: CPython prints its line, ``  | ExceptionGroup: msg (2 sub-exceptions)``, right after
    the group's own frames and BEFORE the ``+-+---- 1 ----`` sub-exceptions, which are its content
    and not the chain; so that first line at the group's margin is taken, never the last line.

    billiard's ExceptionWithTraceback (Celery >= 5.3's ``Task handler raised error:
    WorkerLostError(...)``) has an empty message and prints the real traceback after it inside a
    ``\"\"\"`` block: the exception inside the block is taken (``WorkerLostError``), not the wrapper.
    """
    lines = trace.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(_CHAINED):
            return _raised(lines[i + 1 :])
    return _raised(lines)


def _raised(lines: list[str]) -> tuple[str | None, str | None]:
    """The exception line of one part of a chain (see :func:`exception_from_trace`)."""
    for i, line in enumerate(lines):
        if line.startswith("  | ") and line[4:5] not in ("", " "):  # a group's own line
            etype, emsg = _exception_line(line[4:])
            if etype is None:
                continue
            more = [text[4:] for text in _until(lines[i + 1 :], "  | ")]
            return etype, "\n".join([emsg or "", *more]).rstrip() if more else emsg
        if not line or line[0] == " " or line.startswith("Traceback (most recent call last)"):
            continue
        etype, emsg = _exception_line(line)
        if etype is None:
            continue
        rest = lines[i + 1 :]
        if not (emsg or "").strip() and rest and rest[0].strip() == '"""':
            inner = _until_quotes(rest[1:])
            itype, imsg = exception_from_trace("\n".join(inner))
            if itype is not None:
                return itype, imsg
            return etype, emsg
        more = _until_quotes(rest)
        return etype, "\n".join([emsg or "", *more]).rstrip() if more else emsg
    return None, None


def _until(lines: list[str], prefix: str) -> list[str]:
    """The leading lines that start with ``prefix``."""
    for i, line in enumerate(lines):
        if not line.startswith(prefix):
            return lines[:i]
    return lines


def _until_quotes(lines: list[str]) -> list[str]:
    """The lines before a ``\"\"\"`` line (the end of billiard's quoted traceback)."""
    for i, line in enumerate(lines):
        if line.strip() == '"""':
            return lines[:i]
    return lines


def _exception_line(line: str) -> tuple[str | None, str | None]:
    """``Type: message`` / ``Type:`` / a bare ``Type`` -> (type, message), else (None, None)."""
    line = line.rstrip()
    head, sep, rest = line.partition(": ")
    if not sep and line.endswith(":"):
        head, sep = line[:-1], ":"
    if sep:
        return (head, rest) if head and " " not in head else (None, None)
    if " " not in line and line.replace(".", "").replace("_", "").isalnum():
        return line, None
    return None, None
