"""Exceptions of the wire codec.

Malformed input from the peer fails one way: :class:`ProtocolError` (or a subclass that
carries enough context for the server to answer the way ZooKeeper does). Misuse on our
own side (a record that cannot be encoded) is an :class:`EncodeError`, deliberately not a
``ProtocolError`` so that a server never mistakes its own bug for a misbehaving client.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """The peer sent bytes that are not valid ZooKeeper protocol."""


class MalformedRequest(ProtocolError):
    """A request header parsed, its opcode is known, but its body is malformed.

    The frame was consumed whole, so the stream is still in sync. ZooKeeper 3.8 answers
    such a request with ``ReplyHeader(xid, lastZxid, MarshallingError(-5))`` and keeps the
    connection (``FinalRequestProcessor``/``PrepRequestProcessor`` catch the
    deserialization exception); the exception is ``auth`` (100), whose failure closes the
    connection. ZooKeeper ignores trailing bytes after a record; this codec reports them
    as malformed too.
    """

    def __init__(
        self, xid: int, opcode: int, reason: str, decoded: tuple[Any, Any] | None = None
    ) -> None:
        super().__init__(f"malformed request (xid {xid}, opcode {opcode}): {reason}")
        self.xid = xid
        self.opcode = opcode
        self.reason = reason
        self.decoded = decoded
        """(header, record) when the record itself decoded and only trailing bytes followed:
        ZooKeeper ignores those, so a server may serve the record."""


class UnknownOpcode(ProtocolError):
    """A request header parsed but its opcode is not in the opcode table.

    ZooKeeper answers ``ReplyHeader(xid, zxid, Unimplemented(-6))`` and closes the
    connection (``UnimplementedRequestProcessor``); the session survives.
    """

    def __init__(self, xid: int, opcode: int) -> None:
        super().__init__(f"unknown opcode {opcode} (xid {xid})")
        self.xid = xid
        self.opcode = opcode


class EncodeError(ValueError):
    """A record cannot be encoded: a value out of range for its jute type, a wrong type,
    or an op that a multi cannot carry. Always a bug on the encoding side."""
