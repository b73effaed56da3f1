"""A cross-check server in a thread of its own, for blocking clients (tests, fuzz campaigns).

``ThreadedCrossCheck(etcd_endpoint, zk_address)`` runs the etcd emulation, the bridge and the
cross-checker in one trio run on a background thread and serves them on a free loopback port;
``settle()`` waits until every pending watch event and connection close has found its pair or
run out of time, and returns the divergences recorded so far. ``wrap`` puts something (a fault
injector, a recorder) between the checker and the candidate.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Self

import trio

from oracle.bridge import BridgeBackend
from oracle.crosscheck import CrossChecker, Options
from oracle.records import Divergence
from zetcd.backend import Backend
from zetcd.emulation.backend import EtcdBackend
from zetcd.emulation.backend import Options as EmulationOptions
from zetcd.etcd import EtcdClient
from zetcd.server import Connection, ServerConfig, serve

LOOPBACK = "127.0.0.1"


class ThreadedCrossCheck:
    def __init__(
        self,
        etcd_endpoint: str,
        zk_address: str,
        *,
        options: Options | None = None,
        prefix: bytes | None = None,
        wrap: Callable[[EtcdBackend], Backend] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.etcd_endpoint = etcd_endpoint
        zk_host, _, zk_port = zk_address.rpartition(":")
        self.zk = (zk_host, int(zk_port))
        self.options = options or Options()
        self.prefix = prefix or f"/xc-{uuid.uuid4().hex[:8]}/".encode()
        self.wrap = wrap
        self.startup_timeout = startup_timeout
        self.records: list[Divergence] = []
        self.port = 0
        self.checker: CrossChecker | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._connections: set[Connection] = set()
        self._thread = threading.Thread(target=self._main, name="crosscheck", daemon=True)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(self.startup_timeout):
            raise TimeoutError("the cross-check server did not start")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def settle(self, timeout: float | None = None) -> list[Divergence]:
        """Let pending events and closes pair up or expire; the records so far."""
        checker = self.checker
        assert checker is not None and self._token is not None
        wait = self.options.deadline + 1.0 if timeout is None else timeout
        trio.from_thread.run(checker.drain, wait, trio_token=self._token)
        return list(self.records)

    def stop(self) -> None:
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            trio.run(self._run)
        except BaseException as e:
            self._error = e
        finally:
            self._ready.set()

    async def _run(self) -> None:
        client = await EtcdClient.connect(self.etcd_endpoint)
        try:
            candidate = EtcdBackend(client, EmulationOptions(prefix=self.prefix))
            bridge = BridgeBackend(*self.zk)
            served = candidate if self.wrap is None else self.wrap(candidate)
            checker = CrossChecker(served, bridge, self.options, [self.records.append])
            self.checker = checker
            async with trio.open_nursery() as nursery:
                await nursery.start(candidate.run)
                await nursery.start(bridge.run)
                await nursery.start(checker.run)
                listeners = await nursery.start(
                    partial(
                        serve,
                        checker,
                        LOOPBACK,
                        0,
                        ServerConfig(max_client_cnxns=0),
                        connections=self._connections,
                    )
                )
                self.port = listeners.plain[0].socket.getsockname()[1]
                self._stop = trio.Event()
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._stop.wait()
                for conn in list(self._connections):
                    conn.close()
                await checker.drain(self.options.deadline + 0.5)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
