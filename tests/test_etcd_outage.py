"""zetcd outlives an etcd outage of any length: while etcd is away its clients are dropped and
new ones refused, as by a ZooKeeper server without a quorum; once etcd is back the clients
resume their sessions and nothing is lost. The outage here is longer than the etcd client's
reconnect_timeout (30 s), after which the watch used to give up and zetcd to exit."""

from __future__ import annotations

import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from tests.servers import free_port, wait_until
from tests.test_etcd_client import start_etcd, stop_etcd
from tests.zetcd_server import ZetcdServer

OUTAGE = 35.0  # seconds: past the etcd client's reconnect_timeout


def test_zetcd_waits_for_etcd_however_long_it_is_away(tmp_path: Path) -> None:
    client_port, peer_port = free_port(), free_port()
    endpoint, etcd = start_etcd(tmp_path, client_port=client_port, peer_port=peer_port)
    processes = [etcd]
    try:
        with ZetcdServer(f"http://{endpoint}") as z:
            client = KazooClient(z.address, timeout=60)
            client.start(timeout=15)
            session_id = client.client_id[0]
            client.create("/kept", b"before")
            stop_etcd(etcd)
            time.sleep(OUTAGE)
            assert z.running, f"zetcd exited while etcd was away:\n{z.log_tail(20)}"
            _, restarted = start_etcd(tmp_path, client_port=client_port, peer_port=peer_port)
            processes.append(restarted)
            connected = KazooState.CONNECTED
            wait_until(lambda: client.state == connected, 30, "the client never reconnected")
            assert client.retry(client.get, "/kept")[0] == b"before"
            client.retry(client.create, "/after", b"after")
            assert client.client_id[0] == session_id  # the session lived through it
            assert z.running
            assert "watches again" in z.log_tail(400)
            client.stop()
            client.close()
    finally:
        for process in processes:
            stop_etcd(process)
