"""A zetcd whose etcd watch fell behind etcd's compaction rebuilds its mirror in place, as a
ZooKeeper follower resyncs from a snapshot: its clients are disconnected, resume their sessions
on it, and get the events they missed through setWatches; the ephemerals of a session that
ended meanwhile are cleaned up."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pyetcd
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from tests.rawclient import RawClient
from tests.servers import EtcdServer, wait_until
from tests.zetcd_server import ZetcdServer
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ACL, CreateRequest, Id

OPEN = (ACL(31, Id("world", "anyone")),)
# etcd drops a connection whose peer does not answer its pings within 1 s: a stopped zetcd
# loses its watch, and resumes it from its last revision once it runs again
ETCD_KEEPALIVE = ("--grpc-keepalive-interval", "1s", "--grpc-keepalive-timeout", "1s")


def test_a_zetcd_behind_etcds_compaction_reloads_its_tree_and_keeps_serving() -> None:
    prefix = f"/zetcd-compact-{uuid.uuid4().hex[:8]}/"
    with (
        EtcdServer(extra_args=ETCD_KEEPALIVE) as etcd,
        ZetcdServer(etcd.endpoint, prefix=prefix) as behind,
        ZetcdServer(etcd.endpoint, prefix=prefix) as other,
    ):
        client = KazooClient(behind.address, timeout=20)
        client.start(timeout=15)
        session_id = client.client_id[0]
        client.create("/w", b"old")
        client.create("/mine", b"", ephemeral=True)
        fired = threading.Event()
        client.get("/w", watch=lambda event: fired.set())
        # a session that ends while the first zetcd is stopped: its ephemeral must go
        doomed = RawClient(other.address)
        doomed.connect(timeout=4000)
        assert doomed.call(OpCode.CREATE, CreateRequest("/doomed", b"", OPEN, 1)).header.err == 0

        os.kill(behind.pid, signal.SIGSTOP)
        try:
            writer = KazooClient(other.address, timeout=20)
            writer.start(timeout=15)
            writer.set("/w", b"new")
            writer.create("/while-stopped", b"x")
            doomed.close()  # expires after its 4 s
            wait_until(lambda: not writer.exists("/doomed"), 15, "the doomed session never expired")
            kv = pyetcd.client(host=etcd.host, port=etcd.port, timeout=10)
            kv.compact(kv.put("/compaction-mark", "").header.revision)  # etcd's revision now
            kv.close()
            writer.stop()
            writer.close()
            time.sleep(2.5)  # etcd drops the stopped zetcd's connection (its pings unanswered)
        finally:
            os.kill(behind.pid, signal.SIGCONT)

        # the zetcd reloads its tree and drops its clients, which resume their sessions on it;
        # setWatches tells them what they missed
        wait_until(lambda: "tree reloaded" in behind.log_tail(200), 20, "the zetcd never reloaded")
        assert fired.wait(20), "the watch on /w never fired"
        wait_until(lambda: client.state == KazooState.CONNECTED, 20, "the client never reconnected")
        assert client.client_id[0] == session_id
        assert client.retry(client.get, "/w")[0] == b"new"
        assert client.retry(client.exists, "/while-stopped") is not None
        assert client.retry(client.exists, "/mine") is not None  # its session lived on
        assert client.retry(client.exists, "/doomed") is None
        client.retry(client.create, "/after", b"")  # writes go on
        assert behind.running, "the zetcd exited"
        client.stop()
        client.close()
