"""Java's ``new String(bytes, StandardCharsets.UTF_8)``, as OpenJDK 17 does it.

ZooKeeper decodes every jute ``ustring`` this way. Java never fails here: malformed input
becomes U+FFFD, and how many bytes one U+FFFD stands for follows Java's own rules, not the
"maximal subpart" rule Python's ``decode("utf-8", "replace")`` follows. The CESU-8 form of a
surrogate (``ED A0 BD``) is one U+FFFD in Java and three in Python, for instance.

:func:`decode` returns the Java string as a Python ``str`` of UTF-16 code units: a character
outside the BMP (a valid 4-byte sequence) is kept as its two surrogate code points
(:func:`java_string`).

Both decoders accept exactly the same well-formed sequences (those of the Unicode standard:
no overlong forms, no surrogates, nothing above U+10FFFF), so well-formed runs are left to
Python's strict decoder and only the length of each malformed piece is Java's (a codec error
handler that tells the decoder where to resume). Java's rules, with ``b1`` the byte where
decoding failed and "continuation" meaning ``80``-``BF``:

- ``80``-``BF``, ``C0``, ``C1`` and ``F8``-``FF``: U+FFFD for that byte alone.
- ``C2``-``DF`` (not followed by a continuation): for ``b1`` alone.
- ``E0``-``EF`` with two more bytes: for ``b1`` alone when the second byte is not a
  continuation or is ``80``-``9F`` after ``E0`` (overlong); else for two bytes when the third
  is not a continuation; else (a surrogate, ``ED A0``-``BF`` x) one U+FFFD for all three.
- ``E0``-``EF`` with one byte left: ``b1`` alone when that byte fails the second-byte test
  above; else one U+FFFD for both (``ED A0`` at the end is one U+FFFD, not two).
- ``F0``-``F7`` with three more bytes: ``b1`` alone when it is above ``F4`` or the second byte
  is not a continuation or out of range (``90``-``BF`` after ``F0``, ``80``-``8F`` after
  ``F4``); else two bytes when the third is not a continuation; else three (the fourth is not).
- ``F0``-``F7`` with fewer than three bytes left: the same tests on whatever bytes there are
  (above ``F4``, bad second byte: ``b1`` alone; third byte not a continuation: two bytes),
  and when nothing there fails, one U+FFFD for all the rest of the input.

That is Unicode's "maximal subpart" practice (Python's) with one exception: Java takes ``ED``
followed by ``A0``-``BF`` as the start of a 3-byte sequence and only rejects the surrogate once
it has decoded it, where Python rejects ``ED`` at once. Over the short strings below, the two
differ exactly on the 5,888 that contain such a pair.

Verified against OpenJDK 17 itself by tests/test_javautf8.py (tests/java/Utf8Decode.java):
every string of one to four bytes over 31 boundary bytes (about 950,000 strings) and
thousands of random longer strings mixing valid sequences, CESU-8 surrogates and random
bytes. And against ZooKeeper 3.8.0, whose ``sync`` reply echoes the path it decoded (written
back one UTF-16 unit at a time, CESU-8 style): the same 950,000 short strings and 5,000 random
ones once by hand, every string of up to three of those bytes in the test.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

__all__ = ["decode", "java_string"]

ERROR_HANDLER: Final = "zetcd-java-utf8"
"""The codec error handler :func:`decode` registers (Java's U+FFFD for one malformed piece)."""

_REPLACEMENT: Final = "\ufffd"
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")


def _is_continuation(b: int) -> bool:
    return 0x80 <= b <= 0xBF


def _second_ok(b1: int, b2: int) -> bool:
    """Whether ``b2`` may follow the lead ``b1`` (E0-EF or F0-F4) as its second byte."""
    if b1 == 0xE0:
        return 0xA0 <= b2 <= 0xBF
    if b1 == 0xF0:
        return 0x90 <= b2 <= 0xBF
    if b1 == 0xF4:
        return 0x80 <= b2 <= 0x8F
    return _is_continuation(b2)


def malformed_length(raw: bytes, start: int) -> int:
    """How many bytes Java's one U+FFFD covers for the malformed input at ``raw[start]``.

    Only meaningful where decoding fails, i.e. the bytes at ``start`` do not begin a
    well-formed sequence."""
    b1 = raw[start]
    left = len(raw) - start - 1  # bytes after the lead
    if 0xE0 <= b1 <= 0xEF:
        if left == 0 or not _second_ok(b1, raw[start + 1]):
            return 1
        if left == 1:
            return 2  # a valid start cut short by the end: one U+FFFD for what is there
        if not _is_continuation(raw[start + 2]):
            return 2
        return 3  # three good bytes, yet malformed: an encoded surrogate
    if 0xF0 <= b1 <= 0xF7:
        if b1 > 0xF4 or (left >= 1 and not _second_ok(b1, raw[start + 1])):
            return 1
        if left >= 2 and not _is_continuation(raw[start + 2]):
            return 2
        return 3 if left >= 3 else left + 1
    return 1


def _java_replace(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return _REPLACEMENT, error.start + malformed_length(error.object, error.start)


codecs.register_error(ERROR_HANDLER, _java_replace)


def _surrogate_pair(m: re.Match[str]) -> str:
    c = ord(m.group()) - 0x10000
    return chr(0xD800 | c >> 10) + chr(0xDC00 | c & 0x3FF)


def java_string(s: str) -> str:
    """The Java string ``s`` stands for: characters outside the BMP as surrogate pairs."""
    return s if s.isascii() else _ASTRAL.sub(_surrogate_pair, s)


def decode(raw: bytes) -> str:
    """``new String(raw, StandardCharsets.UTF_8)`` on OpenJDK 17, as UTF-16 code units:
    malformed input becomes U+FFFD by Java's rules, a supplementary character becomes a
    surrogate pair."""
    if raw.isascii():
        return raw.decode("ascii")
    return java_string(raw.decode("utf-8", ERROR_HANDLER))
