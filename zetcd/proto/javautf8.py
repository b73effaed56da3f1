"""Java's ``new String(bytes, StandardCharsets.UTF_8)``, as OpenJDK 17 does it.

ZooKeeper decodes every jute ``ustring`` this way. Java never fails here: malformed input
becomes U+FFFD, and how many bytes one U+FFFD stands for follows Java's own rules, not the
"maximal subpart" rule Python's ``decode("utf-8", "replace")`` follows. The CESU-8 form of a
surrogate (``ED A0 BD``) is one U+FFFD in Java and three in Python, for instance.

:func:`decode` returns the Java string as a Python ``str`` of UTF-16 code units: a character
outside the BMP (a valid 4-byte sequence) is kept as its two surrogate code points
(:func:`java_string`).

Both decoders accept exactly the same well-formed sequences (those of the Unicode standard:
no overlong forms, no surrogates, nothing above U+10FFFF). Java's rules for how much of
malformed input one U+FFFD stands for, with ``b1`` the byte where decoding failed and
"continuation" meaning ``80``-``BF``:

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
it has decoded it, where Python rejects ``ED`` at once. Over the test's short strings (below),
the two differ exactly on the 5,888 that contain such a pair.

Verified against OpenJDK 17 itself by tests/test_javautf8.py (tests/java/Utf8Decode.java):
every string of one to four bytes over 31 boundary bytes (about 950,000 strings) and
thousands of random longer strings mixing valid sequences, CESU-8 surrogates and random
bytes. And against ZooKeeper 3.8.0, whose ``sync`` reply echoes the path it decoded (written
back one UTF-16 unit at a time, CESU-8 style): the same 950,000 short strings and 5,000 random
ones once by hand, every string of up to three of those bytes in the test.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["decode", "decode_code_points", "java_string"]

# the one place Java's rules part from Python's "replace": an encoded surrogate, or its first
# two bytes, is one malformed piece to Java (ED is no continuation byte, so no sequence before
# it can take it in, and what follows the match starts afresh in both decoders)
_ENCODED_SURROGATE: Final = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]?")
_REPLACEMENT: Final = "\ufffd".encode()
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")


def _surrogate_pair(m: re.Match[str]) -> str:
    c = ord(m.group()) - 0x10000
    return chr(0xD800 | c >> 10) + chr(0xDC00 | c & 0x3FF)


def java_string(s: str) -> str:
    """The Java string ``s`` stands for: characters outside the BMP as surrogate pairs."""
    return s if s.isascii() else _ASTRAL.sub(_surrogate_pair, s)


def decode_code_points(raw: bytes) -> str:
    """``new String(raw, StandardCharsets.UTF_8)`` on OpenJDK 17 as code points (a character
    outside the BMP as itself): malformed input becomes U+FFFD by Java's rules. Each piece
    Java's rules take whole is replaced first, then Python's decoder (in C, so hostile input
    costs what valid input does) replaces the rest as Java would."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _ENCODED_SURROGATE.sub(_REPLACEMENT, raw).decode("utf-8", "replace")


def decode(raw: bytes) -> str:
    """``new String(raw, StandardCharsets.UTF_8)`` on OpenJDK 17, as UTF-16 code units:
    malformed input becomes U+FFFD by Java's rules, a supplementary character becomes a
    surrogate pair."""
    if raw.isascii():
        return raw.decode("ascii")
    return java_string(decode_code_points(raw))
