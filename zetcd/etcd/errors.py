"""Exceptions raised by the etcd client.

gRPC errors never escape the client: a call either returns a response or raises one of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

__all__ = ["CompactedError", "EtcdError", "EtcdUnavailable", "translate_rpc_error"]


class EtcdUnavailable(Exception):
    """No endpoint answered (connection refused, timed out, no leader, stream broken for good).

    ``indeterminate`` is True when a mutating request (put, delete, txn, compact, lease grant or
    revoke) may have been applied although no answer arrived: the request had left this process
    when the connection broke or the deadline passed, so the client did not replay it elsewhere.
    The caller must find out (e.g. by reading) instead of blindly retrying.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoints: Sequence[str] = (),
        code: grpc.StatusCode | None = None,
        indeterminate: bool = False,
    ) -> None:
        super().__init__(message)
        self.endpoints = tuple(endpoints)
        self.code = code
        self.indeterminate = indeterminate


class EtcdError(Exception):
    """etcd answered with an error. ``code`` is the gRPC status code, ``details`` its message."""

    def __init__(self, details: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(f"{code.name}: {details}" if code is not None else details)
        self.code = code
        self.details = details


class CompactedError(EtcdError):
    """The requested revision has been compacted away.

    Raised by a watch whose next revision is below the compaction point (``compact_revision`` is
    the oldest revision still available: restart from a fresh range at or after it), by a
    range at a compacted revision and by ``compact`` at an already compacted revision (there
    etcd does not say where the compaction point is and ``compact_revision`` is 0).
    """

    def __init__(
        self,
        details: str,
        compact_revision: int = 0,
        code: grpc.StatusCode | None = grpc.StatusCode.OUT_OF_RANGE,
    ) -> None:
        super().__init__(details, code)
        self.compact_revision = compact_revision


_COMPACTED = "required revision has been compacted"


def translate_rpc_error(err: Any) -> EtcdError:
    """Map a non-UNAVAILABLE ``grpc.RpcError`` (a call object) to an ``EtcdError``."""
    code: grpc.StatusCode | None = err.code() if hasattr(err, "code") else None
    details: str = (err.details() if hasattr(err, "details") else None) or str(err)
    if _COMPACTED in details:
        return CompactedError(details, 0, code)
    return EtcdError(details, code)
