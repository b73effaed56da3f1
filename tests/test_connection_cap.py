"""The per-address connection cap (ZooKeeper's maxClientCnxns, zetcd's --max-client-cnxns): over
it a new connection is closed at once, before anything is read, and the connections already open
keep their sessions. Run side by side on ZooKeeper 3.8 and zetcd, both capped at 3."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.rawclient import Closed, RawClient
from tests.servers import EtcdServer, ZooKeeperServer, four_letter_word
from tests.zetcd_server import ZetcdServer
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ExistsRequest

CAP = 3


@pytest.fixture(scope="module")
def capped(etcd: EtcdServer) -> Iterator[dict[str, ZooKeeperServer | ZetcdServer]]:
    zk = ZooKeeperServer(config={"maxClientCnxns": str(CAP)})
    zetcd = ZetcdServer(etcd.endpoint, extra_args=("--max-client-cnxns", str(CAP)))
    with zk, zetcd:
        yield {"zookeeper": zk, "zetcd": zetcd}


def _connects(address: str) -> str:
    try:  # the connect itself failed with EPIPE here once, the server closing at once
        client = RawClient(address)
    except (BrokenPipeError, ConnectionResetError):
        return "closed"
    try:
        return "session" if client.connect().sessionId else "refused"
    except (Closed, OSError):
        return "closed"
    finally:
        client.close()


def _wait_for(check: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _scenario(server: ZooKeeperServer | ZetcdServer) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    held = [RawClient(server.address) for _ in range(CAP)]
    try:
        seen.append(("the first three", [bool(c.connect().sessionId) for c in held]))
        seen.append(("one more", _connects(server.address)))
        # a four-letter word needs a connection too
        host, port = server.address.rsplit(":", 1)
        seen.append(("srvr over the cap", _four_letter_word(host, int(port), "srvr")))
        exists = ExistsRequest("/", False)
        seen.append(
            ("the held ones serve", [c.call(OpCode.EXISTS, exists).header.err for c in held])
        )
        held.pop().close()
        # the server notices the close on its own time: a slot frees soon after
        seen.append(("after one closed", _wait_for(lambda: _connects(server.address) == "session")))
    finally:
        for c in held:
            c.close()
    # every slot comes back once the clients have gone
    seen.append(("all slots back", _wait_for(lambda: _all_connect(server.address))))
    return seen


def _four_letter_word(host: str, port: int, word: str) -> str:
    try:
        return four_letter_word(host, port, word)
    except OSError:  # a reset, if the server closed before it read the word
        return ""


def _all_connect(address: str) -> bool:
    clients: list[RawClient] = []
    try:
        for _ in range(CAP):
            clients.append(RawClient(address))
        return all(c.connect().sessionId for c in clients)
    except (Closed, OSError):
        return False
    finally:
        for c in clients:
            c.close()


def test_connections_over_the_cap_are_closed_as_zookeeper_closes_them(
    capped: dict[str, ZooKeeperServer | ZetcdServer],
) -> None:
    expected = _scenario(capped["zookeeper"])
    assert expected[1] == ("one more", "closed")  # the reference, as observed on 3.8
    assert _scenario(capped["zetcd"]) == expected
    assert f"too many connections from 127.0.0.1 - max is {CAP}" in capped["zetcd"].log_tail(200)


def test_the_cap_is_reported_by_conf(capped: dict[str, ZooKeeperServer | ZetcdServer]) -> None:
    for server in capped.values():
        host, port = server.address.rsplit(":", 1)
        assert f"maxClientCnxns={CAP}\n" in four_letter_word(host, int(port), "conf")


def test_no_cap_with_zero(zetcd: ZetcdServer) -> None:
    """The suite's zetcd runs with --max-client-cnxns 0, as the suite's ZooKeeper with
    maxClientCnxns=0: more than ZooKeeper's default 60 connections from one address."""
    clients = [RawClient(zetcd.address) for _ in range(70)]
    try:
        assert all(c.connect().sessionId for c in clients)
    finally:
        for c in clients:
            c.close()
