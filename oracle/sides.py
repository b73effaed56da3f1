"""The two sides of a cross-check."""

from __future__ import annotations

import enum


class Side(enum.Enum):
    CANDIDATE = "candidate"  # the etcd emulation
    ORACLE = "oracle"  # the real ZooKeeper, behind the bridge

    @property
    def other(self) -> Side:
        return Side.ORACLE if self is Side.CANDIDATE else Side.CANDIDATE

    @classmethod
    def from_flag(cls, flag: str) -> Side:
        """``--debug-oracle``'s value (Go zetcd's spelling): which side answers the client."""
        sides = {"zk": cls.ORACLE, "etcd": cls.CANDIDATE}
        try:
            return sides[flag]
        except KeyError:
            raise ValueError(f"--debug-oracle must be zk or etcd, not {flag!r}") from None
