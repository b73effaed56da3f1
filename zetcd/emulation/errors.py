"""The one exception the emulation's rules raise: a ZooKeeper error code for this request."""

from __future__ import annotations


class OpError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
