"""The iteration orders of the Java collections whose order ZooKeeper lets clients see.

ZooKeeper returns a node's children in the order of a ``java.util.HashSet<String>`` (and lists
watched paths in wchc and wchp in the order of others), a session's
ephemerals (getEphemerals, and the order they are deleted in when it ends) in the order of a
clone of one, and a connection's auth ids (whoAmI) in the order of a set backed by a
``ConcurrentHashMap<Id, _>``. All follow from Java's hash codes and table sizes, reproduced here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

_MASK32 = 0xFFFFFFFF


@functools.lru_cache(maxsize=1 << 16)
def java_string_hash(s: str) -> int:
    """Java's String.hashCode over UTF-16 code units (as an unsigned 32-bit value)."""
    h = 0
    b = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(b), 2):
        h = (31 * h + (b[i] << 8 | b[i + 1])) & _MASK32
    return h


def java_hashset_order(names: Iterable[str], max_size: int, initial: int = 8) -> list[str]:
    """The iteration order of a java.util.HashSet<String> (or the keys of a HashMap) created
    with ``initial`` buckets, holding ``names`` (in insertion order) after it once held
    ``max_size``: a node's children (HashSet(8)); the watch tables wchc and wchp list (16).

    The table doubles whenever its size passes 3/4 of the table (it never shrinks); a name's
    bucket is (h ^ (h >>> 16)) & (n - 1); within a bucket, insertion order.
    """
    mask = _grown_table(initial, max_size) - 1
    keyed = []
    for i, name in enumerate(names):
        h = java_string_hash(name)
        keyed.append((((h ^ (h >> 16)) & mask), i, name))
    keyed.sort()
    return [k[2] for k in keyed]


def _grown_table(initial: int, peak: int) -> int:
    """Buckets of a java.util.HashMap created with ``initial`` that once held ``peak`` entries:
    it doubles whenever its size passes 3/4 of the table, and never shrinks."""
    n = initial
    while peak > n * 3 // 4:
        n *= 2
    return n


def _table_size_for(n: int) -> int:
    cap = 1
    while cap < n:
        cap *= 2
    return cap


def java_hashset_clone_order(names: Iterable[str], peak: int) -> list[str]:
    """The iteration order of ``new HashSet<String>()`` holding ``names`` (given in insertion
    order), after it once held ``peak`` entries, then ``clone()``d: ZooKeeper's DataTree
    getEphemerals, whose result closeSession deletes in order.

    The set's table starts at 16 buckets and doubles when its size passes 3/4 of it. The clone
    (Java 17's HashMap.putMapEntries) is pre-sized to tableSizeFor(size / 0.75 + 1) buckets and
    filled in the set's iteration order, so a name's place is decided by its bucket in the clone,
    then its bucket in the set, then insertion order.
    """
    listed = list(names)
    original = _grown_table(16, peak)
    clone = _table_size_for(int(len(listed) / 0.75 + 1.0))
    keyed = []
    for i, name in enumerate(listed):
        h = java_string_hash(name)
        h ^= h >> 16
        keyed.append((h & (clone - 1), h & (original - 1), i, name))
    keyed.sort()
    return [k[3] for k in keyed]


def id_hash(scheme: str, ident: str) -> int:
    """The jute-generated hashCode of ``data.Id(scheme, id)`` (unsigned 32-bit)."""
    result = (37 * 17 + java_string_hash(scheme)) & _MASK32
    return (37 * result + java_string_hash(ident)) & _MASK32


def concurrent_set_order(ids: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The iteration order of ``Collections.newSetFromMap(new ConcurrentHashMap<>())`` after
    adding ``ids`` in turn (duplicates are ignored, as the set does).

    The table starts at 16 bins and doubles when the count reaches 3/4 of it. A new key goes to
    the tail of bin ``spread(h) & (n - 1)`` with ``spread(h) = (h ^ (h >>> 16)) & 0x7fffffff``.
    A resize splits each bin by the bit ``n`` of the spread hash: the longest tail of the bin
    whose nodes share that bit keeps its order, and the nodes before it are prepended one by one
    to their half (so they end up reversed, in front).
    """
    n = 16
    bins: list[list[tuple[int, tuple[str, str]]]] = [[] for _ in range(n)]
    seen: set[tuple[str, str]] = set()
    for key in ids:
        if key in seen:
            continue
        seen.add(key)
        h = id_hash(*key)
        h = (h ^ (h >> 16)) & 0x7FFFFFFF
        bins[h & (n - 1)].append((h, key))
        if len(seen) >= n - (n >> 2):
            bins = _transfer(bins, n)
            n *= 2
    return [key for b in bins for _, key in b]


def _transfer(
    bins: list[list[tuple[int, tuple[str, str]]]], n: int
) -> list[list[tuple[int, tuple[str, str]]]]:
    out: list[list[tuple[int, tuple[str, str]]]] = [[] for _ in range(2 * n)]
    for i, nodes in enumerate(bins):
        if not nodes:
            continue
        last_run = len(nodes) - 1
        while last_run > 0 and (nodes[last_run - 1][0] & n) == (nodes[-1][0] & n):
            last_run -= 1
        lo: list[tuple[int, tuple[str, str]]] = []
        hi: list[tuple[int, tuple[str, str]]] = []
        (hi if nodes[-1][0] & n else lo).extend(nodes[last_run:])
        for node in nodes[:last_run]:
            (hi if node[0] & n else lo).insert(0, node)
        out[i] = lo
        out[i + n] = hi
    return out
