"""The test infrastructure itself: real servers start, answer, fail loudly and stop cleanly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request

import pytest
from kazoo.client import KazooClient

from tests.conftest import KazooClientFactory, Target
from tests.servers import (
    EtcdServer,
    ServerStartError,
    ZooKeeperServer,
    four_letter_word,
    free_port,
)


def _refuses(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return True
    return False


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_etcd_put_get(etcd: EtcdServer) -> None:
    import pyetcd

    assert etcd.endpoint == f"http://127.0.0.1:{etcd.port}"
    client = pyetcd.client(host=etcd.host, port=etcd.port, timeout=10)
    try:
        client.put("/infra/key", "value")
        value, meta = client.get("/infra/key")
        assert value == b"value"
        assert meta.mod_revision > 0
    finally:
        client.close()


def test_etcd_health_and_version(etcd: EtcdServer) -> None:
    with urllib.request.urlopen(f"{etcd.endpoint}/version", timeout=5) as response:
        version = json.load(response)
    assert version["etcdserver"].startswith("3.")


def test_etcdctl_sees_the_same_server(etcd: EtcdServer) -> None:
    env = {**os.environ, "ETCDCTL_API": "3"}
    run = ["etcdctl", "--endpoints", etcd.endpoint, "--command-timeout=10s"]
    subprocess.run([*run, "put", "/infra/ctl", "v"], check=True, env=env, capture_output=True)
    got = subprocess.run(
        [*run, "get", "--print-value-only", "/infra/ctl"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert got.stdout.strip() == "v"


def test_zookeeper_four_letter_words(zookeeper: ZooKeeperServer) -> None:
    assert zookeeper.address == f"127.0.0.1:{zookeeper.port}"
    assert zookeeper.four_letter_word("ruok") == "imok"
    assert zookeeper.four_letter_word("isro") == "rw"
    srvr = four_letter_word(zookeeper.host, zookeeper.port, "srvr")
    assert srvr.startswith("Zookeeper version: 3.8.")
    assert "Mode: standalone" in srvr


def test_kazoo_round_trip_under_chroot(
    zookeeper: ZooKeeperServer, chroot: str, kazoo_client_factory: KazooClientFactory
) -> None:
    assert chroot.startswith("/t-") and len(chroot) == len("/t-") + 12
    client = kazoo_client_factory(zookeeper.address, chroot)
    client.create("/node", b"hello")
    data, stat = client.get("/node")
    assert data == b"hello"
    assert stat.version == 0
    assert client.get_children("/") == ["node"]
    # The same node seen from the real root.
    root = kazoo_client_factory(zookeeper.address)
    assert root.get(f"{chroot}/node")[0] == b"hello"


def test_kazoo_clients_are_closed_at_teardown(
    zookeeper: ZooKeeperServer, kazoo_client_factory: KazooClientFactory
) -> None:
    client: KazooClient = kazoo_client_factory(zookeeper.address, timeout=5.0)
    assert client.connected
    assert client._session_timeout == 5000  # negotiated within [2, 20] ticks


def test_target_names_its_server(target: Target, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(target.kind)
    assert target.address == server.address
    assert (target.host, target.port) == (server.host, server.port)
    with socket.create_connection((target.host, target.port), timeout=5) as sock:
        sock.sendall(b"ruok")
        assert sock.recv(16) == b"imok"


def test_servers_stop_cleanly() -> None:
    with EtcdServer() as etcd, ZooKeeperServer() as zookeeper:
        processes = [etcd.pid, zookeeper.pid]
        endpoints = [(etcd.host, etcd.port), (zookeeper.host, zookeeper.port)]
        directories = [etcd.log_path.parent, zookeeper.log_path.parent]
        assert zookeeper.four_letter_word("ruok") == "imok"
    for pid in processes:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for host, port in endpoints:
        assert _refuses(host, port)
    for directory in directories:
        assert not directory.exists()
    assert not etcd.running and not zookeeper.running
    etcd.stop()  # idempotent
    zookeeper.stop()


def test_zookeeper_start_failure_shows_log_tail() -> None:
    server = ZooKeeperServer(config={"tickTime": "not-a-number"}, startup_timeout=30)
    with pytest.raises(ServerStartError, match=r"(?s)zookeeper exited.*NumberFormatException"):
        server.start()
    assert not server.running


def test_etcd_start_failure_shows_log_tail() -> None:
    server = EtcdServer(extra_args=["--no-such-flag"])
    with pytest.raises(ServerStartError, match=r"(?s)etcd exited.*no-such-flag"):
        server.start()
    assert not server.running
