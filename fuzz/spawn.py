"""``--spawn``: start etcd, zetcd and ZooKeeper 3.8 on loopback for a campaign or a replay.

The servers come from the test suite's harness (``tests/servers.py``, ``tests/zetcd_server.py``),
which a source checkout (or an editable install) has next to this package; they need the
Debian packages ``make deps`` installs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class SpawnError(RuntimeError):
    pass


def _harness() -> tuple[Any, Any, Any]:
    if not (REPO / "tests" / "servers.py").exists():
        raise SpawnError(
            "--spawn needs a source checkout of zetcd (tests/servers.py starts the servers); "
            "pass --zetcd and --zookeeper instead"
        )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.servers import EtcdServer, ZooKeeperServer
    from tests.zetcd_server import ZetcdServer

    return EtcdServer, ZetcdServer, ZooKeeperServer


@contextlib.contextmanager
def spawned() -> Iterator[tuple[str, str]]:
    """Yield (zetcd address, ZooKeeper address); everything is stopped on exit."""
    etcd_cls, zetcd_cls, zookeeper_cls = _harness()
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(etcd_cls())
        zookeeper = stack.enter_context(zookeeper_cls())
        zetcd = stack.enter_context(zetcd_cls(etcd.endpoint))
        yield zetcd.address, zookeeper.address


@contextlib.contextmanager
def servers(zetcd: str | None, zookeeper: str | None, spawn: bool) -> Iterator[tuple[str, str]]:
    if spawn:
        if zetcd or zookeeper:
            raise SpawnError("--spawn starts its own servers: drop --zetcd and --zookeeper")
        with spawned() as addresses:
            yield addresses
        return
    if not zetcd or not zookeeper:
        raise SpawnError("pass both --zetcd HOST:PORT and --zookeeper HOST:PORT, or --spawn")
    yield zetcd, zookeeper
