"""Terse builders for etcd transaction parts (compares and request ops).

All return raw ``rpc_pb2`` messages, ready for :meth:`EtcdClient.txn`.
"""

from __future__ import annotations

from typing import Any

from pyetcd.etcdrpc import rpc_pb2

__all__ = [
    "compare_create",
    "compare_mod",
    "compare_value",
    "compare_version",
    "op_delete",
    "op_put",
    "op_range",
    "prefix_end",
]

_Compare: Any = rpc_pb2.Compare
_RESULTS: dict[str, int] = {
    "=": _Compare.EQUAL,
    "==": _Compare.EQUAL,
    "!=": _Compare.NOT_EQUAL,
    "<": _Compare.LESS,
    ">": _Compare.GREATER,
}


def _result(op: str) -> int:
    try:
        return _RESULTS[op]
    except KeyError:
        raise ValueError(f"compare operator must be one of '=', '!=', '<', '>': {op!r}") from None


def compare_mod(key: bytes, op: str, revision: int) -> Any:
    """Compare the key's mod_revision (0 when the key is absent)."""
    return _Compare(key=key, result=_result(op), target=_Compare.MOD, mod_revision=revision)


def compare_create(key: bytes, op: str, revision: int) -> Any:
    """Compare the key's create_revision; ``compare_create(k, '=', 0)`` means "k is absent"."""
    return _Compare(key=key, result=_result(op), target=_Compare.CREATE, create_revision=revision)


def compare_version(key: bytes, op: str, version: int) -> Any:
    """Compare the key's version (number of puts since creation; 0 when absent)."""
    return _Compare(key=key, result=_result(op), target=_Compare.VERSION, version=version)


def compare_value(key: bytes, op: str, value: bytes) -> Any:
    """Compare the key's value (the compare is false when the key is absent)."""
    return _Compare(key=key, result=_result(op), target=_Compare.VALUE, value=value)


def op_put(key: bytes, value: bytes, lease: int = 0) -> Any:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))


def op_delete(key: bytes, range_end: bytes | None = None) -> Any:
    req = rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end or b"")
    return rpc_pb2.RequestOp(request_delete_range=req)


def op_range(key: bytes, range_end: bytes | None = None) -> Any:
    req = rpc_pb2.RangeRequest(key=key, range_end=range_end or b"")
    return rpc_pb2.RequestOp(request_range=req)


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix``.

    Increments the last byte below 0xff and drops what follows; for an empty prefix or one made
    only of 0xff bytes the answer is ``b"\\0"``, which etcd reads as "to the end of the keyspace".
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"
