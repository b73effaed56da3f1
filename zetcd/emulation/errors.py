"""The exceptions the emulation's rules raise: a ZooKeeper error code for this request."""

from __future__ import annotations

from zetcd.proto.constants import Err


class OpError(Exception):
    """What ZooKeeper answers with a KeeperException: this code, for this request (in a
    multi, for this op: the others get their per-op results)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ServerCrash(OpError):
    """Where ZooKeeper's request processor throws something other than a KeeperException (a
    NullPointerException on a null field, say): the whole request fails with MarshallingError,
    a multi included (no per-op results), and a zxid is spent."""

    def __init__(self) -> None:
        super().__init__(Err.MARSHALLING_ERROR)
