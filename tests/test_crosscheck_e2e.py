"""Cross-check mode end to end: ``zetcd --debug-zkbridge ... --debug-oracle zk|etcd`` run through
its command line in front of the test etcd and a ZooKeeper of its own, driven by the
differential scenarios (raw protocol and kazoo) and kazoo's recipes.

Each scenario must leave the divergence log empty, and the client must see what a real
ZooKeeper shows (the scenarios compare their transcript with one taken directly from the test
ZooKeeper), whichever side answers. Divergences about requests are written before the reply
leaves, so each test checks its own; watch events and closes pair up within the deadline, so the
last test stops the server and checks that nothing was recorded late and that
``--fail-on-divergence`` exits 0.

The oracle ZooKeeper is a fresh one used by nothing else: its tree must evolve exactly as the
candidate's (a fresh key prefix), or reads of "/" would differ.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

import tests.test_diff_modern as modern
import tests.test_diff_ops as ops
import tests.test_diff_wire as wire
import tests.test_recipes as recipes
import tests.test_session_recreate as recreate
import tests.test_sessions as sessions
from tests.conftest import KazooClientFactory, Target
from tests.differential import Diff
from tests.rawclient import RawClient
from tests.servers import EtcdServer, ZooKeeperServer
from tests.zetcd_server import ZetcdServer
from zetcd.proto.constants import Err, EventType, OpCode
from zetcd.proto.records import (
    ACL,
    CreateRequest,
    ExistsRequest,
    GetDataRequest,
    Id,
    SetDataRequest,
    SetWatches,
    SyncRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)

# Scenarios that see where replies are buffered or when a connection closes, which a proxy
# changes (docs/crosscheck.md, Limits): a claimed or expired connection's unsent replies, all of
# which ZooKeeper sent to the proxy; and whether it is closed before the newcomer is answered,
# which through the proxy follows ZooKeeper's close of the proxy's own connection, relayed later
BUFFERED = {
    "test_a_claimed_connection_ends_without_the_replies_it_has_not_sent",
    "test_an_expired_connection_ends_without_the_replies_it_has_not_sent",
    "test_a_connection_claiming_a_session_closes_its_connection_before_it_is_answered",
}


def scenarios(*modules: Any) -> list[Any]:
    """Every ``test_*(diff)`` of the differential modules, as pytest params."""
    out = []
    for mod in modules:
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            params = list(inspect.signature(fn).parameters)
            wanted = name.startswith("test_") and name not in BUFFERED
            if wanted and fn.__module__ == mod.__name__ and params == ["diff"]:
                out.append(pytest.param(fn, id=f"{mod.__name__.rpartition('.')[2]}.{name}"))
    return out


def recipe_tests() -> list[Any]:
    return [
        pytest.param(fn, id=name)
        for name, fn in inspect.getmembers(recipes, inspect.isfunction)
        if name.startswith("test_") and fn.__module__ == recipes.__name__
    ]


@dataclass
class Proxy:
    """A cross-check zetcd, its oracle and its divergence log."""

    oracle: str
    server: ZetcdServer
    zookeeper: ZooKeeperServer
    log: Path
    seen: int = 0
    exit_codes: list[int | None] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.server.address

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def new_records(self) -> list[dict[str, Any]]:
        records = self.records()
        new, self.seen = records[self.seen :], len(records)
        return new

    def stop(self) -> int | None:
        process = self.server._process
        self.server.stop()
        return None if process is None else process.popen.returncode


@pytest.fixture(scope="module", params=["zk", "etcd"])
def proxy(
    request: pytest.FixtureRequest, etcd: EtcdServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    oracle = request.param
    zk = ZooKeeperServer().start()
    try:
        log = tmp_path_factory.mktemp(f"crosscheck-{oracle}") / "divergences.jsonl"
        args: tuple[str, ...] = ("--debug-zkbridge", zk.address, "--debug-oracle", oracle)
        args += ("--divergence-log", str(log), "--fail-on-divergence")
        server = ZetcdServer(etcd.endpoint, extra_args=args).start()
        try:
            yield Proxy(oracle, server, zk, log)
        finally:
            server.stop()
    finally:
        zk.stop()


def no_divergence(records: list[dict[str, Any]]) -> None:
    assert records == [], "divergences:\n" + "\n".join(json.dumps(r)[:2000] for r in records)


@pytest.mark.parametrize("scenario", scenarios(ops, wire, modern, sessions))
def test_differential_scenario(
    proxy: Proxy, zookeeper: ZooKeeperServer, scenario: Callable[[Diff], None]
) -> None:
    scenario(Diff(zookeeper.address, proxy.address))
    no_divergence(proxy.new_records())


def test_unknown_opcodes(proxy: Proxy, zookeeper: ZooKeeperServer) -> None:
    wire.test_other_unknown_opcodes(Diff(zookeeper.address, proxy.address), 10)
    no_divergence(proxy.new_records())


@pytest.mark.parametrize("read_only", [None, True])
def test_create_session_inside_a_session(
    proxy: Proxy, zookeeper: ZooKeeperServer, read_only: bool | None
) -> None:
    """Its answer, a bare ConnectResponse frame, is taken from ZooKeeper's stream as the answer
    and compared without a reply header; the next request puts the session back on its own
    timeout on both sides."""
    diff = Diff(zookeeper.address, proxy.address)
    recreate.test_a_create_session_inside_a_session_is_answered_as_zookeeper_does(diff, read_only)
    no_divergence(proxy.new_records())
    if read_only is None:
        recreate.test_a_client_heard_after_the_create_session_keeps_its_own_timeout(diff)
        no_divergence(proxy.new_records())


@pytest.mark.parametrize("recipe", recipe_tests())
def test_kazoo_recipe(
    proxy: Proxy, kazoo_client_factory: KazooClientFactory, recipe: Callable[..., None]
) -> None:
    recipe(Target("zetcd", proxy.address), f"/recipe-{uuid.uuid4().hex[:10]}", kazoo_client_factory)
    no_divergence(proxy.new_records())


def test_resume_and_set_watches_translate_zxids(proxy: Proxy) -> None:
    """A session resumed on a new connection with lastZxidSeen and setWatches' relativeZxid in
    the answering side's numbering: the other side gets them in its own, so both fire the same
    events at once (a change missed while away) and later (a create)."""
    root = f"/resume-{uuid.uuid4().hex[:10]}"
    a = RawClient(proxy.address)
    conn = a.connect(timeout=10000)
    a.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
    a.call(OpCode.CREATE, CreateRequest(root + "/kept", b"", OPEN, 0))
    seen = a.call(OpCode.GET_DATA, GetDataRequest(root, True)).header.zxid
    a.close()  # the connection goes; the session and its zxid horizon stay
    b = RawClient(proxy.address)
    b.connect()
    b.call(OpCode.SET_DATA, SetDataRequest(root, b"changed while away", -1))
    again = RawClient(proxy.address)
    resumed = again.connect(session_id=conn.sessionId, passwd=conn.passwd or b"", last_zxid=seen)
    assert resumed.sessionId == conn.sessionId
    watches = SetWatches(seen, (root, root + "/kept"), (root + "/new",), (root,))
    again.request(OpCode.SET_WATCHES, watches, xid=-8)
    assert again.reply().header.err == 0
    b.call(OpCode.CREATE, CreateRequest(root + "/new", b"", OPEN, 0))
    again.call(OpCode.SYNC, SyncRequest(root))
    got = sorted((e.type, e.path) for e in again.pending)
    assert got == [
        (EventType.NODE_CREATED, root + "/new"),
        (EventType.NODE_DATA_CHANGED, root),
        (EventType.NODE_CHILDREN_CHANGED, root),
    ]
    for c in (again, b):
        c.call(OpCode.CLOSE_SESSION)
        c.close()
    no_divergence(proxy.new_records())


def test_session_expiry(proxy: Proxy) -> None:
    """An ephemeral's owner drops its connection: both sides expire the session, delete the node
    and tell the watchers, within the pairing deadline of each other."""
    root = f"/expiry-{uuid.uuid4().hex[:10]}"
    observer = KazooClient(hosts=proxy.address, timeout=10)
    observer.start(timeout=15)
    try:
        observer.create(root)
        owner = RawClient(proxy.address)
        conn = owner.connect(timeout=4000)
        assert owner.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1)).header.err == 0
        events: list[tuple[str, str]] = []
        both = threading.Event()

        def watch(event: Any) -> None:
            events.append((event.type, event.path))
            if len(events) == 2:
                both.set()

        observer.exists(root + "/e", watch=watch)
        observer.get_children(root, watch=watch)
        owner.close()  # no closeSession: the session expires on both sides
        assert both.wait(20)
        time.sleep(2.5)  # the other side's expiry comes within the deadline
        assert sorted(events) == [("CHILD", root), ("DELETED", root + "/e")]
        parent = observer.exists(root)
        assert parent is not None and parent.numChildren == 0
        again = RawClient(proxy.address)
        assert again.connect(session_id=conn.sessionId, passwd=conn.passwd or b"").sessionId == 0
        again.close()
    finally:
        observer.stop()
        observer.close()
    no_divergence(proxy.new_records())


def test_shutdown_finds_no_late_divergence(proxy: Proxy) -> None:
    """Last: stop the server; watch events and closes have all paired, and
    --fail-on-divergence exits 0."""
    code = proxy.stop()
    no_divergence(proxy.new_records())
    assert code == 0


def test_fail_on_divergence_exits_1_and_the_report_renders(
    etcd: EtcdServer, zookeeper: ZooKeeperServer, tmp_path: Path
) -> None:
    """A node made on the oracle behind zetcd's back is a divergence; the Go spellings of the
    flags work; --fail-on-divergence exits 1; ``zetcd report`` renders the log."""
    log = tmp_path / "divergences.jsonl"
    args: tuple[str, ...] = ("-debug-zkbridge", zookeeper.address, "-debug-oracle", "etcd")
    args += ("--divergence-log", str(log), "--fail-on-divergence")
    server = ZetcdServer(etcd.endpoint, extra_args=args).start()
    path = f"/behind-{uuid.uuid4().hex[:10]}"
    direct = KazooClient(hosts=zookeeper.address)
    direct.start(timeout=15)
    direct.create(path)
    direct.stop()
    direct.close()
    client = RawClient(server.address)
    client.connect()
    reply = client.call(OpCode.EXISTS, ExistsRequest(path, False))
    assert reply.header.err == Err.NO_NODE  # the emulation answers
    client.close()
    process = server._process
    assert process is not None
    server.stop()
    assert process.popen.returncode == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["kind"], r["op"], r["answered"]) for r in records] == [
        ("error", "exists", "candidate")
    ]
    report = subprocess.run(
        [sys.executable, "-m", "zetcd", "report", str(log), "--markdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    assert "| exists | error | 1 |" in report.stdout
