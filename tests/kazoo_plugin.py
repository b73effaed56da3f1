"""A pytest plugin that runs kazoo's own test suite against one already running server.

Load it with ``-p tests.kazoo_plugin`` when running ``pytest --pyargs kazoo.tests`` (cwd or
PYTHONPATH must make ``tests`` importable). Environment:

``ZETCD_KAZOO_TARGET``
    ``host:port`` of the ZooKeeper-protocol server every kazoo test talks to (required).
``ZETCD_KAZOO_REPORT``
    where to write a JSON report ``{nodeid: {"outcome": ..., "message": ...}}`` (optional).
``ZETCD_KAZOO_TIMEOUT``
    time limit in seconds for each phase (setup, call, teardown) of a kazoo test; default 90,
    0 disables. A phase over its limit fails with all thread stacks on stderr.

kazoo's harness (``kazoo.testing.harness``) normally starts a three-server ZooKeeper ensemble
from ``ZOOKEEPER_*`` environment variables; here ``get_global_cluster`` is replaced by one that
returns an :class:`ExternalCluster` of a single :class:`ExternalServer` for the target.

The server's process is not ours to stop, so kazoo's tests reach it through a TCP relay in this
process (:class:`_Relay`, on its own loopback port): ``server.stop()`` closes the relay's
listening socket and every relayed connection (clients see the connection drop, then
"connection refused", as when a server process dies), ``server.run()`` listens again on the
same port. The server itself keeps its sessions, as a restarted standalone ZooKeeper does
(sessions are in its snapshot; zetcd's are in etcd), so kazoo's tests that suspend a client by
stopping its server and resume the session afterwards are meaningful. ``start()`` and
``terminate()`` of the cluster are no-ops. There is no TLS port and no ensemble:
``secure_address`` is the plain address (a TLS handshake there fails) and ``cluster[1]``
raises IndexError.

Modules kazoo's test code imports that zetcd does not depend on are replaced when missing:
``objgraph`` (``test_cache`` counts objects with ``objgraph.count``) by a stand-in with the same
semantics (gc-tracked objects whose type has that name), ``OpenSSL`` and ``jks`` (imported by
``kazoo.testing.common`` only to make TLS certificates for its ensemble, never used here) by
placeholders whose every attribute raises ImportError.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from tests.timelimit import phase_hooks

TARGET_ENV = "ZETCD_KAZOO_TARGET"
REPORT_ENV = "ZETCD_KAZOO_REPORT"
TIMEOUT_ENV = "ZETCD_KAZOO_TIMEOUT"
DEFAULT_TIMEOUT = 90.0


class ExternalServerError(RuntimeError):
    """An operation that needs control over the server's process."""


class _Relay:
    """A loopback TCP relay to ``target`` that can stop (drop everything) and run again.

    One daemon thread moves bytes with a selector; ``stop()``/``run()`` take the same lock the
    thread holds while it handles events, so they never race with a transfer.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.host = "127.0.0.1"
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._listener: socket.socket | None = None
        self._closed = False
        self.port = 0
        self.run()
        threading.Thread(target=self._loop, name="kazoo-relay", daemon=True).start()

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def run(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(64)
            listener.setblocking(False)
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._selector.register(listener, selectors.EVENT_READ)

    def stop(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._selector.unregister(self._listener)
                self._listener.close()
                self._listener = None
            for sock in list(self._peers):
                self._close(sock)

    def close(self) -> None:
        """Stop for good: also ends the relay's thread."""
        self.stop()
        self._closed = True

    def _close(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self._peers.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(s)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5.0)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(10.0)  # sendall below; receivers always read
        self._peers[client] = upstream
        self._peers[upstream] = client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._close(sock)

    def _loop(self) -> None:
        while not self._closed:
            if not self._selector.get_map():
                time.sleep(0.05)  # stopped, nothing relayed: select() would return at once
                continue
            events = self._selector.select(timeout=0.1)
            with self._lock:
                for key, _ in events:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock.fileno() < 0:
                        continue  # closed by stop() since select() returned
                    if sock is self._listener:
                        self._accept(sock)
                    elif sock in self._peers:
                        self._forward(sock)


class ExternalServer:
    """The part of kazoo's ``ManagedZooKeeper`` the harness and kazoo's tests use."""

    def __init__(self, target: str) -> None:
        self.target = target
        host, _, port = target.rpartition(":")
        self._relay = _Relay((host, int(port)))
        self.host = self._relay.host
        self.client_port = self._relay.port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def secure_address(self) -> str:
        return self.address

    @property
    def running(self) -> bool:
        return self._relay.listening

    def run(self) -> None:
        self._relay.run()

    def stop(self) -> None:
        self._relay.stop()

    def reset(self) -> None:
        raise ExternalServerError(f"{self.address} is an external server: cannot reset it")

    def destroy(self) -> None:
        pass

    def close(self) -> None:
        """Not kazoo's: stop relaying for good (ends the relay's thread)."""
        self._relay.close()

    def get_logs(self, num_lines: int = 100) -> list[str]:
        return []


class ExternalCluster:
    """The part of kazoo's ``ZookeeperCluster`` the harness and kazoo's tests use."""

    def __init__(self, address: str) -> None:
        self._servers = [ExternalServer(address)]

    def __getitem__(self, index: int) -> ExternalServer:
        return self._servers[index]

    def __iter__(self) -> Iterator[ExternalServer]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def start(self) -> None:
        for server in self._servers:
            server.run()

    def stop(self) -> None:
        for server in self._servers:
            server.stop()

    def terminate(self) -> None:
        self.start()  # the harness restarts what it terminated; nothing to destroy here

    def reset(self) -> None:
        raise ExternalServerError("an external server cannot be reset")

    def get_logs(self) -> list[str]:
        return []

    def close(self) -> None:
        """Not kazoo's: stop every server's relay for good."""
        for server in self._servers:
            server.close()

    def get_ssl_client_configuration(self) -> dict[str, str]:
        raise ExternalServerError("an external server has no TLS port")


def _objgraph_standin() -> types.ModuleType:
    module = types.ModuleType("objgraph")

    def count(typename: str, objects: Any = None) -> int:
        candidates = gc.get_objects() if objects is None else objects
        return sum(1 for obj in candidates if type(obj).__name__ == typename)

    module.count = count  # type: ignore[attr-defined]
    return module


class _Unavailable(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        raise ImportError(f"{self.__name__} is not installed (placeholder from {__name__})")


def _ensure_module(name: str, standin: types.ModuleType) -> None:
    try:
        __import__(name)
    except ImportError:
        sys.modules[name] = standin


# -- installation ----------------------------------------------------------------------------


_cluster: ExternalCluster | None = None
_report: dict[str, dict[str, str]] = {}


def pytest_configure(config: pytest.Config) -> None:
    global _cluster
    address = os.environ.get(TARGET_ENV)
    if not address:
        raise pytest.UsageError(f"{TARGET_ENV} must name the server (host:port)")
    _cluster = ExternalCluster(address)
    _ensure_module("objgraph", _objgraph_standin())
    _ensure_module("OpenSSL", _Unavailable("OpenSSL"))
    _ensure_module("jks", _Unavailable("jks"))
    from kazoo.testing import harness

    harness.get_global_cluster = lambda: _cluster


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(_report, out, indent=1, sort_keys=True)


# -- outcomes --------------------------------------------------------------------------------


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = report.longreprtext
    # The assertion/exception lines (``E   ...``) and the last location say what went wrong.
    lines = text.splitlines()
    errors = [line for line in lines if line.startswith("E ")]
    where = [line for line in lines if ": in " in line or line.endswith(("Error", "Exception"))]
    summary = "\n".join(errors[-12:]) or "\n".join(lines[-12:])
    if where:
        summary += "\n" + where[-1]
    return summary


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _report.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if report.when == "call":
        if report.failed:
            entry.update(outcome="failed", message=_message(report))
        elif report.skipped:
            entry.update(outcome="skipped", message=_message(report))
    elif report.failed:
        # A setup or teardown failure is an error (as pytest says), unless the call failed.
        if entry["outcome"] != "failed":
            entry.update(outcome="error", message=f"{report.when}: {_message(report)}")
    elif report.skipped:
        entry.update(outcome="skipped", message=_message(report))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _report[report.nodeid] = {"outcome": "error", "message": f"collection: {_message(report)}"}


# -- per-phase time limit --------------------------------------------------------------------


def _time_limit() -> float:
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))


pytest_runtest_setup, pytest_runtest_call, pytest_runtest_teardown = phase_hooks(
    lambda item: _time_limit()
)
