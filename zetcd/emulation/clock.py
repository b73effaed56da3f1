"""The time a transaction gives its nodes (ctime, mtime), kept in step with other zetcds.

Theory of operation: the fence's value is the time of the last transaction any zetcd committed
(layout.py), and a transaction's time is never before it, so times never go back in zxid order.
A zetcd whose clock is behind another's would, planning with its own clock, take the fence's
time for every write, and lose whenever the other commits a later time while its transaction is
in flight (a per-key transaction is bounded by its time: batcher.py), again and again. So the
clock remembers by how much another zetcd's time was seen ahead of it (its *lead*; it halves
every LEAD_HALF_LIFE seconds, and a steady skew is seen again at each of the other's commits)
and plans at its own time plus that lead: both zetcds then plan about the same times. Its own
commits are not looked at, the lead is measured against the unrounded clock and a time is
rounded down, and another's time is seen no sooner than it was taken: so a lead never exceeds
the other's clock plus the other's lead, and two zetcds do not push each other's times forward.

A fence more than MAX_LEAD ahead of the clock comes from a clock that was wrong (another
zetcd's, or this host's before it was stepped back): following it would freeze every time at
its value (and keep TTL nodes from expiring), so the clock keeps its own time, does not bound
its transactions by the fence, and says so in the log. Times then go back in zxid order, as
they do on a ZooKeeper whose clock is stepped back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_LEAD = 60_000  # ms: a fence further ahead than this is not followed
LEAD_HALF_LIFE = 2.0  # s
WARN_EVERY = 60.0  # s between two warnings about a fence too far ahead


class TxnClock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.lead = 0.0  # ms another zetcd's time was seen ahead of this clock (decaying)
        self._last = 0.0  # the clock (ms) at the last plan
        self._warned = -WARN_EVERY

    def plan(self, fence_time: int, by_another: bool = True) -> tuple[int, bool]:
        """The time of a transaction planned now, the fence holding ``fence_time`` (put
        ``by_another`` zetcd, or by this one), and whether it is to be bounded by the fence
        (no later-timed commit before it)."""
        clock = self.wall() * 1000
        ahead = fence_time - clock
        if ahead > MAX_LEAD:
            if clock / 1000 - self._warned >= WARN_EVERY:
                self._warned = clock / 1000
                log.error(
                    "the last transaction's time is %.1f s ahead of this host's clock (a zetcd"
                    " sharing the prefix has a wrong clock, or this one was stepped back): this"
                    " zetcd keeps its own time; node times may go back in zxid order",
                    ahead / 1000,
                )
            return math.floor(clock), False
        if self._last and clock > self._last:
            self.lead *= 0.5 ** ((clock - self._last) / 1000 / LEAD_HALF_LIFE)
        self._last = clock
        if by_another and ahead > self.lead:
            self.lead = ahead
        return max(math.floor(clock + self.lead), fence_time), True
