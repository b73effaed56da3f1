"""ZooKeeper's expiry queues, as its `dump` four-letter word shows them.

A ZooKeeper server keeps its sessions, and (its NIO connection factory) its connections, in an
``ExpiryQueue``: each element sits in the bucket of the moment it expires, rounded up to the
next multiple of the queue's interval on the monotonic clock (the tick for sessions, the
sessionless connection timeout for connections), and moves to a later bucket whenever it is
touched (a session by each request, a connection by each read or write). A bucket left empty
by such a move stays until its moment has passed, when the expirer takes it, so `dump` lists
it as "0 expire at ...". zetcd keeps them to answer `dump` as ZooKeeper would, and closes a
connection that has not sent its ConnectRequest when its bucket comes (server.py); its sessions
end as docs/architecture.md says, at the same moments (emulation.sessions.expiry_bucket).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from zetcd.emulation.sessions import bucket_ms


class ExpiryQueue:
    __slots__ = ("buckets", "interval", "where")

    def __init__(self, interval_ms: int) -> None:
        self.interval = interval_ms
        self.where: dict[Hashable, int] = {}  # element -> its bucket
        self.buckets: dict[int, dict[Hashable, None]] = {}  # bucket -> elements, in order

    def touch(self, elem: Hashable, now_ms: int, timeout_ms: int) -> None:
        """``elem`` expires ``timeout_ms`` from now (ZooKeeper's ExpiryQueue.update)."""
        bucket = bucket_ms(now_ms, timeout_ms, self.interval)
        where = self.where
        old = where.get(elem)
        if old == bucket:
            return
        if old is not None:
            self.buckets[old].pop(elem, None)
        members = self.buckets.get(bucket)
        if members is None:
            self._expire(now_ms)
            members = self.buckets[bucket] = {}
        members[elem] = None
        where[elem] = bucket

    def remove(self, elem: Hashable) -> None:
        old = self.where.pop(elem, None)
        if old is not None:
            self.buckets[old].pop(elem, None)

    def _expire(self, now_ms: int) -> None:
        """Take the buckets whose moment has passed, as ZooKeeper's expirer does."""
        for bucket in [b for b in self.buckets if b <= now_ms]:
            for elem in self.buckets.pop(bucket):
                if self.where.get(elem) == bucket:
                    del self.where[elem]

    def dump(self, name: str, label: Callable[[Hashable], str | None]) -> str:
        """ExpiryQueue.dump after ``name`` ("Session", "Connections"): the buckets in time
        order, each element by ``label`` (None: it is gone, left out)."""
        now_ms = int(time.monotonic() * 1000)
        self._expire(now_ms)
        wall_ms = time.time() * 1000
        listed = []
        count = 0
        for bucket in sorted(self.buckets):
            members = [text for elem in self.buckets[bucket] if (text := label(elem)) is not None]
            count += len(members)
            listed.append((bucket, members))
        out = [f"{name} Sets ({len(listed)})/({count}):\n"]
        for bucket, members in listed:
            when = time.localtime((wall_ms + bucket - now_ms) / 1000)
            out.append(
                f"{len(members)} expire at {time.strftime('%a %b %d %H:%M:%S %Z %Y', when)}:\n"
            )
            out.extend(f"\t{text}\n" for text in members)
        return "".join(out)


@dataclass
class Expiries:
    """The server's two queues: sessions (by id, ticks of ``tick_ms``) and connections (the
    NIO factory's, ticks of the sessionless timeout; None where ZooKeeper's Netty factory
    serves, which keeps none)."""

    tick_ms: int = 2000
    sessionless_ms: int | None = 10_000
    sessions: ExpiryQueue = field(init=False)
    connections: ExpiryQueue | None = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = ExpiryQueue(self.tick_ms)
        self.connections = None if self.sessionless_ms is None else ExpiryQueue(self.sessionless_ms)
