"""Shared fixtures: real servers, chroots, kazoo clients, and a per-test time limit.

One etcd and one ZooKeeper serve the whole test session (starting a ZooKeeper costs about a
second of JVM start-up); tests share them safely by working under a unique ``chroot`` each
(the kazoo habit). Servers are stopped at the end of the session whatever happened.

Every test phase (setup, call, teardown) runs under a SIGALRM time limit, so a hung socket
fails one test with all thread stacks dumped instead of stalling CI: 180 s by default,
``ZETCD_TEST_TIMEOUT`` (seconds, 0 disables) changes it, ``@pytest.mark.timeout(S)`` sets it
for one test.
"""

from __future__ import annotations

import os
import signal
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from kazoo.client import KazooClient

from tests.servers import EtcdServer, ZooKeeperServer
from tests.timelimit import phase_hooks
from tests.zetcd_server import ZetcdServer

DEFAULT_TEST_TIMEOUT = 180.0


# -- per-test time limit ---------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "timeout(seconds): time limit for each phase of this test (0: none)"
    )


def _time_limit(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        return float(marker.args[0])
    return float(os.environ.get("ZETCD_TEST_TIMEOUT", DEFAULT_TEST_TIMEOUT))


pytest_runtest_setup, pytest_runtest_call, pytest_runtest_teardown = phase_hooks(_time_limit)


@pytest.fixture(autouse=True)
def _sigpipe_ignored() -> Iterator[None]:
    """SIGPIPE stays ignored, as Python sets it: ``zetcd report`` run in-process (its CLI
    tests) restores the default action, which would then kill the whole test run at the
    first write to a socket a server has closed."""
    yield
    if hasattr(signal, "SIGPIPE") and signal.getsignal(signal.SIGPIPE) != signal.SIG_IGN:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


# -- real servers ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdServer]:
    """One etcd for the session: ``etcd.endpoint`` is ``http://127.0.0.1:P``."""
    server = EtcdServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperServer]:
    """One ZooKeeper 3.8 for the session: ``zookeeper.address`` is ``127.0.0.1:P``."""
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chroot() -> str:
    """A path no other test uses, e.g. ``/t-1f2e3d4c5b6a``; not created."""
    return f"/t-{uuid.uuid4().hex[:12]}"


# -- kazoo clients ---------------------------------------------------------------------------


class KazooClientFactory(Protocol):
    """``factory(address, chroot=None, *, create_chroot=True, connect_timeout=10.0, **kwargs)``."""

    def __call__(
        self,
        address: str,
        chroot: str | None = None,
        *,
        create_chroot: bool = True,
        connect_timeout: float = 10.0,
        **client_kwargs: Any,
    ) -> KazooClient: ...


@pytest.fixture
def kazoo_client_factory() -> Iterator[KazooClientFactory]:
    """Connect started ``KazooClient``s; all are stopped and closed at teardown.

    ``address`` is ``host:port``; with ``chroot`` the client is rooted there and, unless
    ``create_chroot=False``, the chroot node is created. ``connect_timeout`` bounds
    ``start()``; ``client_kwargs`` go to ``KazooClient`` (its ``timeout`` is the session
    timeout in seconds).
    """
    clients: list[KazooClient] = []

    def connect(
        address: str,
        chroot: str | None = None,
        *,
        create_chroot: bool = True,
        connect_timeout: float = 10.0,
        **client_kwargs: Any,
    ) -> KazooClient:
        client = KazooClient(hosts=address + (chroot or ""), **client_kwargs)
        clients.append(client)
        with warnings.catch_warnings():
            if chroot and create_chroot:
                # start() warns (UserWarning) when the chroot node does not exist yet; here
                # it is created right after, so exactly that warning is expected.
                warnings.filterwarnings(
                    "ignore", message="No chroot path exists", category=UserWarning
                )
            client.start(timeout=connect_timeout)
        if chroot and create_chroot:
            client.ensure_path("/")
        return client

    try:
        yield connect
    finally:
        for client in reversed(clients):
            client.stop()
            client.close()


# -- targets: the servers a behaviour test runs against --------------------------------------


@dataclass(frozen=True)
class Target:
    """A ZooKeeper-protocol server under test: ``kind`` is "zookeeper" or "zetcd"."""

    kind: str
    address: str

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


# The ``zetcd`` (session) and ``diff`` fixtures live in tests/differential.py.
pytest_plugins = ["tests.differential"]

TARGET_KINDS: tuple[str, ...] = ("zookeeper", "zetcd")


@pytest.fixture(params=TARGET_KINDS)
def target(request: pytest.FixtureRequest) -> Target:
    """Each behaviour test runs once per kind in TARGET_KINDS; servers start on first use."""
    kind: str = request.param
    if kind == "zookeeper":
        server: ZooKeeperServer = request.getfixturevalue("zookeeper")
        return Target(kind="zookeeper", address=server.address)
    if kind == "zetcd":
        zetcd: ZetcdServer = request.getfixturevalue("zetcd")
        return Target(kind="zetcd", address=zetcd.address)
    raise AssertionError(f"no target fixture for kind {kind!r}")
