"""Differential testing: one scenario, run against real ZooKeeper 3.8 and against zetcd.

A scenario is a function ``scenario(rec)`` that drives kazoo clients through ``rec`` and records
what it observes. Each side runs it under a fresh chroot, then both transcripts are normalized and
must be identical:

- zxids (czxid, mzxid, pzxid, and any value recorded with ``rec.zxid``) become their rank among
  the zxids this transcript saw, so only order and equality are compared;
- ctime/mtime become ``"t0"`` when 0 and ``"t"`` otherwise (clocks differ; both are wall times);
- session ids (ephemeralOwner, client ids) become ``"s1"``, ``"s2"``... by first appearance.

Everything else, error types, data, children (sorted), versions, counts, paths, watch events,
is compared as is. This is the tests' own small normalization; the cross-checker's documented one
lives in oracle/.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import WatchedEvent, ZnodeStat

from tests.servers import EtcdServer, ZooKeeperServer
from tests.zetcd_server import ZetcdServer

ZXID_FIELDS = ("czxid", "mzxid", "pzxid")
TIME_FIELDS = ("ctime", "mtime")


@dataclass
class Zxid:
    value: int


@dataclass
class SessionRef:
    value: int


@dataclass
class Recorder:
    """What a scenario uses: clients, a call recorder, and watch collectors."""

    address: str
    kind: str
    chroot: str
    log: list[tuple[str, Any]] = field(default_factory=list)
    clients: list[KazooClient] = field(default_factory=list)

    def client(self, *, timeout: float = 10.0, chroot: bool = True) -> KazooClient:
        hosts = self.address + (self.chroot if chroot else "")
        zk = KazooClient(hosts=hosts, timeout=timeout)
        zk.start(timeout=15)
        self.clients.append(zk)
        return zk

    def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run fn, record its result or the kazoo exception it raised; return the result."""
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # the exception type is the observation
            self.log.append((label, ("error", type(e).__name__)))
            return None
        self.log.append((label, _observe(result)))
        return result

    def note(self, label: str, value: Any) -> None:
        self.log.append((label, _observe(value)))

    def watcher(self) -> Watches:
        return Watches()


class Watches:
    """A kazoo watch callback that collects events, with a bounded wait."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, event: WatchedEvent) -> None:
        with self._cond:
            self.events.append((event.type, event.path))
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.events) >= n, timeout)
            return list(self.events)


def _observe(value: Any) -> Any:
    if isinstance(value, ZnodeStat):
        d: dict[str, Any] = {}
        for name in ZnodeStat._fields:
            v = getattr(value, name)
            if name in ZXID_FIELDS:
                d[name] = Zxid(v)
            elif name in TIME_FIELDS:
                d[name] = "t0" if v == 0 else "t"
            elif name == "ephemeralOwner":
                d[name] = SessionRef(v) if v and (v >> 56) not in (-1, 0x80, -128) else v
            else:
                d[name] = v
        return d
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], ZnodeStat):
        return (_observe(value[0]), _observe(value[1]))
    if isinstance(value, list | tuple):
        return [_observe(v) for v in value]
    if isinstance(value, dict):
        return {k: _observe(v) for k, v in value.items()}
    if hasattr(value, "_asdict") and not isinstance(value, ZnodeStat):
        return {k: _observe(v) for k, v in value._asdict().items()}
    if isinstance(value, Exception):
        return ("error", type(value).__name__)
    return value


def normalize(log: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    zxids: set[int] = set()
    sessions: dict[int, str] = {}

    def collect(v: Any) -> None:
        if isinstance(v, Zxid):
            zxids.add(v.value)
        elif isinstance(v, SessionRef):
            sessions.setdefault(v.value, f"s{len(sessions) + 1}")
        elif isinstance(v, dict):
            for x in v.values():
                collect(x)
        elif isinstance(v, list | tuple):
            for x in v:
                collect(x)

    for _, v in log:
        collect(v)
    rank = {z: i for i, z in enumerate(sorted(zxids))}

    def rewrite(v: Any) -> Any:
        if isinstance(v, Zxid):
            return f"z{rank[v.value]}"
        if isinstance(v, SessionRef):
            return sessions[v.value]
        if isinstance(v, dict):
            return {k: rewrite(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [rewrite(x) for x in v]
        return v

    return [(label, rewrite(v)) for label, v in log]


Scenario = Callable[[Recorder], None]


def run(address: str, kind: str, scenario: Scenario) -> list[tuple[str, Any]]:
    chroot = f"/diff-{uuid.uuid4().hex[:12]}"
    setup = KazooClient(hosts=address, timeout=10)
    setup.start(timeout=15)
    try:
        setup.create(chroot)
    finally:
        setup.stop()
        setup.close()
    rec = Recorder(address, kind, chroot)
    try:
        scenario(rec)
    finally:
        for zk in rec.clients:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass
    return rec.log


@dataclass
class Diff:
    zookeeper: str
    zetcd: str

    def __call__(self, scenario: Scenario) -> list[tuple[str, Any]]:
        """Run on both servers; assert the normalized transcripts agree; return zetcd's."""
        expected = normalize(run(self.zookeeper, "zookeeper", scenario))
        actual = normalize(run(self.zetcd, "zetcd", scenario))
        assert actual == expected
        return actual


@pytest.fixture(scope="session")
def zetcd(etcd: EtcdServer) -> Iterator[ZetcdServer]:
    server = ZetcdServer(etcd.endpoint)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def diff(zookeeper: ZooKeeperServer, zetcd: ZetcdServer) -> Diff:
    return Diff(zookeeper.address, zetcd.address)
