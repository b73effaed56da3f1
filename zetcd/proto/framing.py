"""Length-prefixed framing and four-letter-word sniffing.

Every packet is a big-endian int32 length then that many bytes of body. The server
(``NIOServerCnxn.readLength``) refuses a length below 0 or above ``jute.maxbuffer`` as
soon as the 4 length bytes arrive, before any body: so does :class:`FrameReader`.

Only the first 4 bytes of a connection may instead be a four-letter word (``ruok``,
``srvr``, ...), sent raw without a length; ZooKeeper reads them as a length and checks
whether the int is a known command. :meth:`FrameReader.sniff_four_letter_word` makes that
decision once, at the start.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, Literal

from .constants import DEFAULT_MAX_PACKET, FOUR_LETTER_WORDS
from .errors import ProtocolError

_LENGTH: Final = struct.Struct(">i")
_unpack_length = _LENGTH.unpack_from
_pack_length = _LENGTH.pack
_FOUR_LETTER_BYTES: Final = frozenset(word.encode("ascii") for word in FOUR_LETTER_WORDS)
# Compact the receive buffer once this many consumed bytes sit at its front.
_COMPACT_AT: Final = 64 * 1024


class NeedData(enum.Enum):
    """Sentinel type: more bytes are needed before anything can be returned."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


def frame(body: bytes | bytearray) -> bytes:
    """Prefix ``body`` with its length."""
    return _pack_length(len(body)) + body


class FrameReader:
    """Accumulates received bytes and cuts them into frame bodies."""

    __slots__ = ("_buf", "_pos", "_sniffed", "max_packet")

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self.max_packet = max_packet
        self._buf = bytearray()
        self._pos = 0
        self._sniffed = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """How many received bytes are not consumed yet."""
        return len(self._buf) - self._pos

    def sniff_four_letter_word(self) -> str | Literal[NeedData.NEED_DATA] | None:
        """At the start of a connection, consume and return a four-letter word.

        Returns the word, ``None`` if the connection starts with a normal frame (or the
        decision was already made, or a frame was already read), or ``NEED_DATA`` while
        fewer than 4 bytes have arrived. A word unknown to ZooKeeper is not a word: it is
        left in place and read as a (far too large) frame length.
        """
        if self._sniffed:
            return None
        if len(self._buf) - self._pos < 4:
            return NEED_DATA
        self._sniffed = True
        head = bytes(self._buf[self._pos : self._pos + 4])
        if head not in _FOUR_LETTER_BYTES:
            return None
        self._consume(4)
        return head.decode("ascii")

    def take(self, n: int) -> bytes | None:
        """Consume exactly ``n`` raw bytes (e.g. the 8-byte mask after ``stmk``), or
        return None if fewer have arrived."""
        if len(self._buf) - self._pos < n:
            return None
        data = bytes(self._buf[self._pos : self._pos + n])
        self._consume(n)
        return data

    def next_frame(self) -> bytes | None:
        """Return the next complete body, or None until it has arrived.

        Raises :class:`ProtocolError` for a negative length or one above ``max_packet``.
        """
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < 4:
            return None
        (length,) = _unpack_length(buf, pos)
        if length < 0 or length > self.max_packet:
            raise ProtocolError(f"frame length {length} outside [0, {self.max_packet}]")
        self._sniffed = True
        if available - 4 < length:
            return None
        start = pos + 4
        body = bytes(buf[start : start + length])
        self._consume(4 + length)
        return body

    def _consume(self, n: int) -> None:
        pos = self._pos + n
        if pos == len(self._buf):
            self._buf.clear()
            pos = 0
        elif pos >= _COMPACT_AT:
            del self._buf[:pos]
            pos = 0
        self._pos = pos
