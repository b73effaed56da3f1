"""Terse builders for etcd transaction parts (compares and request ops).

All return raw ``rpc_pb2`` messages, ready for :meth:`EtcdClient.txn`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyetcd.etcdrpc import rpc_pb2

__all__ = [
    "compare_create",
    "compare_mod",
    "compare_value",
    "compare_version",
    "encode_txn",
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


# ---------------------------------------------------------------------------- pre-encoded txns
# A transaction of many compares and puts is built straight into protobuf's wire format: one
# bytes join instead of a message object per compare and op (and a copy of each into the
# TxnRequest). The output is byte for byte what ``TxnRequest(...).SerializeToString()`` gives
# (checked by the tests). Field numbers from etcd's rpc.proto: TxnRequest compare=1 success=2;
# Compare target=2 key=3 create_revision=5 mod_revision=6 (result EQUAL is the default, 0, so
# protobuf leaves it out; the revision is in a oneof, so it is written even when 0); RequestOp
# request_put=2 request_delete_range=3; PutRequest key=1 value=2 lease=3; DeleteRangeRequest
# key=1.

# Compare: target (field 2) then the key's tag (field 3); the revision's tag (field 5 or 6)
_COMPARE = {"create": (b"\x10\x01\x1a", b"\x28"), "mod": (b"\x10\x02\x1a", b"\x30")}


# every varint below 2^14 (lengths, small revisions), encoded once: a list index instead of a call
_VARINT_SMALL = [bytes((n,)) for n in range(0x80)] + [
    bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(0x80, 0x4000)
]


def _varint(n: int) -> bytes:
    if 0 <= n < 0x4000:
        return _VARINT_SMALL[n]
    if 0 < n < 0x200000:  # revisions, lengths: three bytes
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    n &= 0xFFFFFFFFFFFFFFFF  # int64: a negative value takes ten bytes
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes_field(tag: bytes, data: bytes) -> bytes:
    """A bytes field (protobuf leaves an empty one out)."""
    return tag + _varint(len(data)) + data if data else b""


def encode_txn(
    compares: Iterable[tuple[bytes, str, int]],
    success: Iterable[tuple[bytes, bytes | None, int]],
) -> bytes:
    """A serialized ``TxnRequest`` (for :meth:`EtcdClient.txn_encoded`) of equality compares
    and writes, with no failure branch.

    ``compares``: ``(key, target, revision)``, target ``"mod"`` or ``"create"``: the key's mod
    (create) revision equals ``revision`` (0: the key is absent). ``success``: ``(key, value,
    lease)`` puts, or a delete of the key when ``value`` is None.
    """
    parts: list[bytes] = []
    for key, target, revision in compares:
        _add_compare(parts, _COMPARE[target], key, revision)
    _add_ops(parts, success)
    return b"".join(parts)


def encode_guarded_txn(
    mod_equal: Mapping[bytes, int],
    create_equal: Mapping[bytes, int],
    success: Iterable[tuple[bytes, bytes | None, int]],
    value_below: tuple[bytes, bytes] | None = None,
) -> bytes:
    """:func:`encode_txn` with the compares given as two maps, key to revision: ``mod``
    compares for every key of ``mod_equal``, then ``create`` compares for the keys of
    ``create_equal`` that ``mod_equal`` does not pin already (an unchanged mod revision implies
    the same incarnation of the key); then, with ``value_below`` ``(key, value)``, a compare
    that the key's value is below ``value`` (bytewise; false when the key is absent)."""
    parts: list[bytes] = []
    add = _add_compare
    absent = _ABSENT
    if len(absent) > _ABSENT_MAX:
        absent.clear()
    mod = _COMPARE["mod"]
    for key, revision in mod_equal.items():
        if revision:
            add(parts, mod, key, revision)
            continue
        # "the key is absent" is most of the compares (a node's keys it does not have yet)
        # and the same every time: encoded once per key
        encoded = absent.get(key)
        if encoded is None:
            add(parts, mod, key, 0)
            encoded = absent[key] = parts[-1]
        else:
            parts.append(encoded)
    create = _COMPARE["create"]
    for key, revision in create_equal.items():
        if key not in mod_equal:
            add(parts, create, key, revision)
    if value_below is not None:
        key, value = value_below
        # Compare{result: LESS (field 1), target: VALUE (2), key (3), value (7, in a oneof:
        # written even when empty)}
        body = b"\x08\x02\x10\x03%b\x3a%b%b" % (
            _bytes_field(b"\x1a", key),
            _varint(len(value)),
            value,
        )
        parts.append(b"\x0a" + _varint(len(body)) + body)
    _add_ops(parts, success)
    return b"".join(parts)


# encoded "mod revision 0" compares by key (bounded: cleared when full)
_ABSENT: dict[bytes, bytes] = {}
_ABSENT_MAX = 65536


def _add_compare(parts: list[bytes], tags: tuple[bytes, bytes], key: bytes, revision: int) -> None:
    head, rev_tag = tags
    rev = _VARINT_SMALL[revision] if 0 <= revision < 0x4000 else _varint(revision)
    size = len(key)
    if 0 < size < 0x80 and size + len(rev) < 0x7B:  # the common case, in one format
        parts.append(b"\x0a%c%b%c%b%b%b" % (5 + size + len(rev), head, size, key, rev_tag, rev))
        return
    body = b"".join((head[:2], _bytes_field(b"\x1a", key), rev_tag, rev))
    parts.append(b"\x0a" + _varint(len(body)) + body)


def _add_ops(parts: list[bytes], success: Iterable[tuple[bytes, bytes | None, int]]) -> None:
    v = _varint
    small = _VARINT_SMALL
    add = parts.append
    for key, value, lease in success:
        ksize = len(key)
        if value is not None and not lease and 0 < ksize < 0x80 and 0 < len(value) < 0x3F00:
            # the common case, a put of a short key without a lease, in one format:
            # RequestOp{request_put: PutRequest{key, value}}
            vhead = small[len(value)]
            size = 3 + ksize + len(vhead) + len(value)
            shead = small[size]
            add(b"\x12%b\x12%b\x0a%c%b\x12%b%b" % (
                v(size + 1 + len(shead)), shead, ksize, key, vhead, value
            ))  # fmt: skip
            continue
        if value is None:
            inner = _bytes_field(b"\x0a", key)
            op = b"\x1a" + v(len(inner)) + inner
        else:
            inner = b"".join(
                (
                    _bytes_field(b"\x0a", key),
                    _bytes_field(b"\x12", value),
                    b"\x18" + v(lease) if lease else b"",
                )
            )
            op = b"\x12" + v(len(inner)) + inner
        add(b"\x12" + v(len(op)) + op)


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
