"""Hide credentials in anything the shipper shows: URLs, free text, its own log records.

Why one module: a URL with ``user:password@`` comes from the config (``ES_URL``, ``broker_url``),
from the command line (``kibana import --url``) and from library error messages that echo the
address they failed to reach. Every place that prints or logs one of them goes through here, so the
rule lives once: the whole userinfo (``user:pass@`` or a bare token ``tok@``) becomes ``***@`` and
query parameters that look like secrets (``password=``, ``token=``, ...) lose their value.

Pure functions that never raise (a redactor that crashes on a malformed URL would turn a bad URL
into a traceback), plus a small logging filter for the shipper's own logs.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

#: A scheme (``https://``, ``amqp://``, ``redis+sentinel://``) and what follows it up to whitespace.
#: Quotes and brackets are deliberately part of the token: a password may contain them, and
#: masking a little too much is better than leaking the end of a password.
_URL_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)(\S*)")
#: An authority without userinfo: ``host``, ``host:port``, ``[v6]:port``, perhaps followed by the
#: punctuation that ends a URL in prose or a repr (``host='http://es:9200'),``).
_HOSTPORT_RE = re.compile(r"(?:\[[^\]@]*\]|[^:@/?#\[\]]*)(?::\d*)?['\")\]},;.:>]*")
#: Query parameters whose value is a secret.
_SECRET_PARAM_RE = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.\-]*(?:pass(?:word|wd)?|pwd|secret|token|api[_\-]?key|apikey|auth|"
    r"sig(?:nature)?|credential)[a-z0-9_.\-]*)=)([^&;#\s]*)"
)


def _mask_after_scheme(rest: str) -> str:
    """``rest`` is what follows ``scheme://``. Mask the userinfo: everything up to the last ``@``
    unless the ``@`` is plainly in the path of an authority without userinfo (``es:9200/a@b``);
    with no ``@`` at all, an authority that is not ``host[:port]`` (``user:pa`` of a password cut
    by a space) is masked too. Over-masking is the price of never leaking."""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    at = rest.rfind("@")
    if at >= 0:
        if "@" in authority or not _HOSTPORT_RE.fullmatch(authority):
            rest = MASK + rest[at:]
    elif not _HOSTPORT_RE.fullmatch(authority):
        rest = MASK + rest[len(authority) :]
    if "=" in rest:
        rest = _SECRET_PARAM_RE.sub(lambda m: m.group(1) + MASK, rest)
    return rest


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it masked; anything else unchanged."""
    try:
        if "://" not in text:
            return text
        return _URL_RE.sub(lambda m: m.group(1) + _mask_after_scheme(m.group(2)), text)
    except Exception:  # never: but a redactor must not be the thing that fails
        return "<unprintable text>"


def redact_url(url: str) -> str:
    """One URL, for display: ``https://user:pass@es:9200`` -> ``https://***@es:9200``.

    The whole string is the URL (a password may hold quotes or spaces). A value without a scheme
    (``es:9200`` or ``user:pass@es``) is treated as an authority."""
    if not isinstance(url, str):
        return "<not a string>"
    try:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return _mask_after_scheme(url)
        return scheme + sep + _mask_after_scheme(rest)
    except Exception:  # never: but a redactor must not be the thing that fails
        return "<unprintable URL>"


def redact_value(value: Any, depth: int = 0) -> Any:
    """Strings anywhere in a (JSON-like) value redacted; other values returned as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {k: redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, depth + 1) for v in value]
    return value


#: LogRecord attributes that are never user data.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactFilter(logging.Filter):
    """Mask URL credentials in a record's message and in its string extras.

    For the shipper's own logs: library exceptions (``str(exc)``) and extras such as ``broker``
    or ``reason`` can hold a URL with a password. Cheap when there is no ``://`` in sight.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the formatter's problem, not ours
            message = None
        if message is not None and "://" in message:
            record.msg, record.args = redact_text(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS and isinstance(value, str | dict | list | tuple):
                record.__dict__[key] = redact_value(value)
        return True
