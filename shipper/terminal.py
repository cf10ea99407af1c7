"""Make text from log lines safe to print on a terminal.

Why: ``shipper search`` and ``summary`` print messages that anyone able to write a log line chose.
An ESC or OSC sequence in such a message would reach the operator's terminal: it can recolour or
hide lines, set the window title, write to the clipboard (OSC 52) or, on some terminals, worse.
Control characters (C0, DEL, C1), line/paragraph separators and bidirectional overrides (which
can make text read differently than it is) are shown as visible escapes instead, so one
document is one line and what is printed is what is stored.
"""

from __future__ import annotations

#: C0 controls, DEL, C1 controls (0x9B is a one-byte CSI), separators, bidi embeddings/overrides
#: and isolates, the BOM / zero-width no-break space, and lone surrogates.
_DANGEROUS = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x200E,
    0x200F,
    0x061C,
    0xFEFF,
    *range(0xD800, 0xE000),  # lone surrogates (undecodable bytes): not even encodable for output
]
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escape(cp: int) -> str:
    ch = chr(cp)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


_TABLE = {cp: _escape(cp) for cp in _DANGEROUS}
#: Inside a JSON string the same characters as JSON escapes (orjson already escapes C0).
_JSON_TABLE = {cp: f"\\u{cp:04x}" for cp in _DANGEROUS if 0x7F <= cp < 0xD800 or cp >= 0xE000}


def printable(value: object) -> str:
    """``str(value)`` with every control character shown as a visible escape (``\\x1b``)."""
    text = value if isinstance(value, str) else str(value)
    return text.translate(_TABLE)


def json_line(doc: object) -> str:
    """``doc`` as one line of JSON that is also safe on a terminal (and still valid JSON)."""
    import orjson

    def default(obj: object) -> str:
        return repr(obj)

    try:
        text = orjson.dumps(doc, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        import json

        text = json.dumps(doc, default=repr, ensure_ascii=True)
    return text.translate(_JSON_TABLE)
