"""The iteration orders of the Java collections whose order ZooKeeper lets clients see.

ZooKeeper returns a node's children in the order of a ``java.util.HashSet<String>`` (and lists
watched paths in wchc and wchp in the order of others), a session's
ephemerals (getEphemerals, and the order they are deleted in when it ends) in the order of a
clone of one, and a connection's auth ids (whoAmI) in the order of a set backed by a
``ConcurrentHashMap<Id, _>``. All follow from Java's hash codes and table sizes, reproduced here
while no bucket holds more than eight entries (javahashset.py models a HashSet beyond that).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable

from zetcd.emulation.javaconcurrent import ConcurrentTable

_MASK32 = 0xFFFFFFFF


_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def string_hash(s: str) -> int:
    """Java's String.hashCode over UTF-16 code units (as an unsigned 32-bit value)."""
    units: Iterable[int] = (
        s.encode() if s.isascii() else memoryview(s.encode(_UTF16, "surrogatepass")).cast("H")
    )
    h = 0
    if len(s) <= 64:  # reduced once at the end: cheaper than each step for short names
        for c in units:
            h = 31 * h + c
        return h & _MASK32
    for c in units:
        h = (31 * h + c) & _MASK32
    return h


java_string_hash = functools.lru_cache(maxsize=1 << 16)(string_hash)


def java_hashset_order(names: Iterable[str], max_size: int, initial: int = 8) -> list[str]:
    """The iteration order of a java.util.HashSet<String> (or the keys of a HashMap) created
    with ``initial`` buckets, holding ``names`` (in insertion order) after it once held
    ``max_size``: a node's children (HashSet(8)); the watch tables wchc and wchp list (16).

    The table doubles whenever its size passes 3/4 of the table (it never shrinks); a name's
    bucket is (h ^ (h >>> 16)) & (n - 1); within a bucket, insertion order.
    """
    mask = grown_table(initial, max_size) - 1
    keyed = []
    for i, name in enumerate(names):
        h = java_string_hash(name)
        keyed.append((((h ^ (h >> 16)) & mask), i, name))
    keyed.sort()
    return [k[2] for k in keyed]


def grown_table(initial: int, peak: int) -> int:
    """Buckets of a java.util.HashMap created with ``initial`` that once held ``peak`` entries:
    it doubles whenever its size passes 3/4 of the table, and never shrinks."""
    n = initial
    while peak > n * 3 // 4:
        n *= 2
    return n


def id_hash(scheme: str, ident: str) -> int:
    """The jute-generated hashCode of ``data.Id(scheme, id)`` (unsigned 32-bit)."""
    result = (37 * 17 + java_string_hash(scheme)) & _MASK32
    return (37 * result + java_string_hash(ident)) & _MASK32


def concurrent_set_order(ids: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The iteration order of ``Collections.newSetFromMap(new ConcurrentHashMap<>())`` after
    adding ``ids`` in turn (duplicates are ignored, as the set does)."""
    table: ConcurrentTable[tuple[str, str]] = ConcurrentTable(lambda key: id_hash(*key))
    for key in ids:
        table.add(key)
    return list(table)


def java_long_hash(value: int) -> int:
    """``Long.hashCode``: the two halves of the 64-bit value xor'ed (unsigned 32-bit)."""
    v = value & 0xFFFFFFFFFFFFFFFF
    return (v ^ (v >> 32)) & _MASK32
