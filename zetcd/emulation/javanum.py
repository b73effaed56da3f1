"""Java's number parsing, as ZooKeeper's request processing meets it."""

from __future__ import annotations

import unicodedata


def java_parse_int(text: str, bits: int = 32) -> int | None:
    """Java's ``Integer.parseInt(text)`` (``Long.parseLong`` with ``bits=64``), None where it
    throws NumberFormatException: an optional sign, then at least one decimal digit of any
    script (Unicode category Nd, one UTF-16 unit each: ``\u0661``, ``\uff14``; not ``\u00b2``),
    the value within the type's range."""
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not digits:
        return None
    top = 1 << (bits - 1)
    value = 0
    for ch in digits:
        d = unicodedata.decimal(ch, None) if ch < "\U00010000" else None
        if d is None:
            return None
        value = value * 10 + d
        if value > top:  # out of the type's range whatever follows: stop, as Java does
            return None
    if text[0] == "-":
        value = -value
    return value if -top <= value < top else None
