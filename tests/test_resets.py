"""A client that resets its connection while replies are in flight costs nothing but itself.

The server keeps writing replies to a socket the peer has reset: the kernel answers EPIPE and,
unless the process ignores it, raises SIGPIPE, whose default action kills the process. Checked on
a zetcd of its own (a crash must not take the suite's shared server down with it) and on the
suite's ZooKeeper for reference.
"""

from __future__ import annotations

import socket
import struct
import uuid

import pytest

from tests.rawclient import RawClient
from tests.servers import EtcdServer, ZooKeeperServer
from tests.zetcd_server import ZetcdServer
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ACL, CreateRequest, GetDataRequest, Id, RequestHeader

OPEN = (ACL(31, Id("world", "anyone")),)
BIG = b"x" * 900_000


def _reset_with_replies_in_flight(address: str, path: str) -> None:
    c = RawClient(address)
    c.connect()
    frames = b"".join(
        c.proto.send_request(RequestHeader(i, OpCode.GET_DATA), GetDataRequest(path, False))
        for i in range(1, 40)
    )
    c.sock.sendall(frames)  # ~35 MB of replies: far more than the socket buffers hold
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()  # RST


def _still_serving(address: str, path: str) -> None:
    c = RawClient(address)
    c.connect()
    got = c.call(OpCode.GET_DATA, GetDataRequest(path, False))
    assert got.header.err == 0 and got.body.data == BIG
    c.close()


@pytest.mark.parametrize("kind", ["zetcd", "zookeeper"])
def test_resets_with_replies_in_flight_leave_the_server_running(
    kind: str, etcd: EtcdServer, zookeeper: ZooKeeperServer
) -> None:
    own = ZetcdServer(etcd.endpoint).start() if kind == "zetcd" else None
    try:
        address = own.address if own is not None else zookeeper.address
        path = f"/reset-{uuid.uuid4().hex[:8]}"
        setup = RawClient(address)
        setup.connect()
        assert setup.call(OpCode.CREATE, CreateRequest(path, BIG, OPEN, 0)).header.err == 0
        setup.close()
        for _ in range(5):
            _reset_with_replies_in_flight(address, path)
            _still_serving(address, path)
        if own is not None:
            assert own.running, own.log_tail()
    finally:
        if own is not None:
            own.stop()
