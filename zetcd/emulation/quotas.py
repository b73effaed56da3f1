"""ZooKeeper 3.8.0's quota bookkeeping, as pure functions.

A quota on path Q is two znodes: ``/zookeeper/quota`` + Q + ``/zookeeper_limits`` (what the
user allows) and ``/zookeeper/quota`` + Q + ``/zookeeper_stats`` (what the subtree holds). The
server keeps the stats node's data current by itself (DataTree):

- Creating a node named ``zookeeper_limits`` whose parent path starts with
  ``/zookeeper/quota`` adds the rest of the parent path (``parent[16:]``) to the server's set of
  quota'd paths (a PathTrie; see :func:`components`).
- Creating a node named ``zookeeper_stats`` under such a parent counts the subtree at
  ``parent[16:]`` (its own node included; ``""`` is the root and so the whole tree, the new node
  itself with the data it was created with) and replaces the new node's data with
  ``count=N,bytes=M``.
- Every create, delete and setData then adds its change in node count and data bytes to the
  stats of the deepest quota'd path above it (:func:`max_prefix`), parsing the stats node's
  current data and writing it back (:func:`parse_stats`, :func:`format_stats`), in place: the
  stats node's version, mzxid and mtime do not move and no watch fires. (A quota's own stats
  count only what is not under a deeper quota.)
- Deleting a node named ``zookeeper_limits`` whose parent starts with ``/zookeeper`` (not
  ``/zookeeper/quota``) removes ``parent[16:]`` from the set.

Nothing is enforced (``zookeeper.enforceQuota`` is off by default): the stats only inform.

Where ZooKeeper 3.8.0 throws instead (its server then stops), the functions here say None and
the write goes through without quota bookkeeping (docs/differences.md): a limits node directly
under ``/zookeeper/quota``, a limits node deleted where ``parent[16:]`` is empty or out of
range or names no component, stats data that StatsTrack cannot parse.
"""

from __future__ import annotations

import re

from zetcd.emulation.javanum import java_parse_int
from zetcd.proto.javautf8 import decode_code_points, java_string

QUOTA_ROOT = "/zookeeper/quota"
LIMITS = "zookeeper_limits"
STATS = "zookeeper_stats"
STATS_NAME = "/" + STATS
LIMITS_NAME = "/" + LIMITS
_TRIM = len(QUOTA_ROOT)  # Quotas.trimQuotaPath cuts this many characters

Quotas = frozenset[tuple[str, ...]]  # the quota'd paths, as component tuples

_LONG = 1 << 64
_PAIRS = re.compile("[,;]+")
_JAVA_BLANK = "".join(map(chr, range(0x21)))  # what Java's String.trim() strips


def components(path: str) -> tuple[str, ...]:
    """PathTrie's split: the parts between slashes, without those that are empty or only
    Java whitespace (characters up to U+0020), each kept untrimmed."""
    return tuple(part for part in path.split("/") if part.strip(_JAVA_BLANK))


def max_prefix(quotas: Quotas, path: str) -> str | None:
    """DataTree.getMaxPrefixWithQuota: the deepest quota'd path above or at ``path``, as
    "/" + its components joined; None when there is none."""
    parts = components(path)
    for end in range(len(parts), 0, -1):
        if parts[:end] in quotas:
            return "/" + "/".join(parts[:end])
    return None


def stats_path(prefix: str) -> str:
    return f"{QUOTA_ROOT}{prefix}/{STATS}"


def _split(path: str) -> tuple[str, str]:
    """(parent, name) as DataTree cuts them: the parent of "/a" is ""."""
    cut = path.rfind("/")
    return path[:cut], path[cut + 1 :]


def created_limits(path: str) -> tuple[str, ...] | None:
    """The quota'd path a create of ``path`` adds, or None (also where ZooKeeper throws, or
    adds only the trie's root, which no lookup finds)."""
    parent, name = _split(path)
    if name != LIMITS or not parent.startswith(QUOTA_ROOT) or len(parent) == _TRIM:
        return None
    return components(parent[_TRIM:]) or None


def deleted_limits(path: str) -> tuple[str, ...] | None:
    """The quota'd path a delete of ``path`` removes, or None."""
    parent, name = _split(path)
    if name != LIMITS or not parent.startswith("/zookeeper") or len(parent) <= _TRIM:
        return None
    return components(parent[_TRIM:]) or None


def created_stats(path: str) -> str | None:
    """The path whose subtree a create of ``path`` counts (DataTree.updateQuotaForPath), or
    None when ``path`` is no stats node."""
    parent, name = _split(path)
    if name != STATS or not parent.startswith(QUOTA_ROOT):
        return None
    return parent[_TRIM:]


def touches_quotas(path: str) -> bool:
    """Can creating or deleting ``path`` change which quotas exist or are counted: a limits
    node under ``/zookeeper`` (a delete under ``/zookeeperx/...`` may remove a quota'd path,
    see above) or a stats node under ``/zookeeper/quota``? (Scratch tests
    ``path.startswith("/zookeeper")`` first, for every create and delete.)"""
    if path.endswith(LIMITS_NAME):
        return path.startswith("/zookeeper")
    return path.endswith(STATS_NAME) and path.startswith(QUOTA_ROOT)


# ---------------------------------------------------------------------------- StatsTrack
def _java_split(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Java's ``String.split`` (limit 0): the whole string when nothing matches, else the
    pieces without the trailing empty ones."""
    parts = pattern.split(text)
    if len(parts) == 1:
        return parts
    while parts and parts[-1] == "":
        parts.pop()
    return parts


_EQUALS = re.compile("=")


def parse_stats(data: bytes) -> dict[str, int] | None:
    """``new StatsTrack(data)``: ``key=long`` pairs separated by runs of ``,`` and ``;`` (an
    empty value is -1, a repeated key keeps its last value); None where the constructor
    throws (a pair without ``=`` or value, a value Long.parseLong refuses)."""
    text = decode_code_points(data)
    stats: dict[str, int] = {}
    if not text:
        return stats
    for pair in _java_split(text, _PAIRS):
        kv = _java_split(pair, _EQUALS)
        if len(kv) < 2:
            return None
        value = -1 if kv[1] == "" else java_parse_int(kv[1], 64)
        if value is None:
            return None
        stats[kv[0]] = value
    return stats


def format_stats(stats: dict[str, int]) -> bytes:
    """``StatsTrack.toString()``: count and bytes first (-1 when absent), then, after an
    extra ``=``, every other key in Java's string order, each as ``;key=value``."""
    out = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    rest = sorted((k for k in stats if k not in ("count", "bytes")), key=java_string)
    if rest:
        out += "=" + "".join(f";{k}={stats[k]}" for k in rest)
    return out.encode()


def counted(count: int, size: int) -> bytes:
    """The data updateQuotaForPath writes: a fresh StatsTrack with the subtree's figures."""
    return b"count=%d,bytes=%d" % (count, size)


def updated(data: bytes, count_diff: int, bytes_diff: int) -> bytes | None:
    """DataTree.updateQuotaStat on a stats node holding ``data``: its count and bytes moved by
    the diffs (Java longs: they wrap), everything else rewritten as toString does. None where
    ZooKeeper throws."""
    stats = parse_stats(data)
    if stats is None:
        return None
    stats["count"] = _wrap(stats.get("count", -1) + count_diff)
    stats["bytes"] = _wrap(stats.get("bytes", -1) + bytes_diff)
    return format_stats(stats)


def _wrap(value: int) -> int:
    value %= _LONG
    return value - _LONG if value >= _LONG >> 1 else value
