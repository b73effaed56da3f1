"""Divergences zetcd-fuzz found in zetcd, kept as regressions (replayed against both servers)."""

from __future__ import annotations

from fuzz.ops import Expire, GetData, Multi, Open, SetData, Step
from fuzz.replay import run_steps
from oracle.sides import Side
from tests.servers import ZooKeeperServer
from tests.zetcd_server import ZetcdServer


def test_resume_renegotiates_the_timeout_that_expiry_follows(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A session opened with a 30 s timeout, resumed asking 4 s (the fuzzer's Expire step does
    that), then dropped: ZooKeeper expires it after the renegotiated 4 s. zetcd kept the lease
    granted for 30 s; the session record now moves to a lease of the new TTL."""
    steps = [Step(session=0, op=Open(timeout=30000, read_only=False)), Step(session=0, op=Expire())]
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()


def test_read_only_connect_is_answered_read_write(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A client asking for a read-only session gets readOnly=false from a standalone server."""
    steps = [Step(session=0, op=Open(timeout=30000, read_only=True))]
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()


def test_multiread_mixing_reads_and_writes_is_marshalling_error_without_body(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """ZooKeeper cannot deserialize a multiRead that mixes reads and writes: -5, no body (a
    multiRead of writes only deserializes, and gets -5 with an empty result list)."""
    ops = (GetData(path="/", watch=False), SetData(path="/", data=b"", version=-1))
    steps = [
        Step(session=0, op=Open(timeout=30000, read_only=False)),
        Step(session=0, op=Multi(ops=ops, read=True)),
    ]
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()
