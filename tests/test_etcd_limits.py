"""ZooKeeper work larger than one etcd transaction allows (etcd's --max-txn-ops, 128 by default,
as the test etcd runs): a session's ephemerals are deleted in as many transactions as they need,
a multi that cannot fit is refused with BadArguments, and neither costs the process or another
session anything."""

from __future__ import annotations

import uuid

from kazoo.exceptions import BadArgumentsError, RuntimeInconsistency
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from tests.conftest import KazooClientFactory
from tests.differential import Diff, Recorder
from tests.rawclient import RawClient
from tests.servers import EtcdServer, ZooKeeperServer, wait_until
from tests.zetcd_server import ZetcdServer
from zetcd.embedded import MAX_REQUEST_BYTES
from zetcd.proto.constants import Err, OpCode
from zetcd.proto.records import (
    ACL,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetChildrenRequest,
    Id,
    MultiOp,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)
EPHEMERAL = 1
# far more than one transaction of etcd's default --max-txn-ops takes
SHARED_PARENT = 150
OWN_PARENTS = 40


def _many_ephemerals(r: Recorder, end: str) -> None:
    obs = r.client()
    obs.create("/p")
    for i in range(OWN_PARENTS):
        obs.create(f"/q{i}")
    owner = RawClient(r.address)
    owner.connect(timeout=4000)
    base = r.chroot
    for i in range(SHARED_PARENT):
        req = CreateRequest(f"{base}/p/e{i}", b"", OPEN, EPHEMERAL)
        assert owner.call(OpCode.CREATE, req).header.err == 0
    for i in range(OWN_PARENTS):
        req = CreateRequest(f"{base}/q{i}/e", b"", OPEN, EPHEMERAL)
        assert owner.call(OpCode.CREATE, req).header.err == 0
    shared, own = r.watcher(), r.watcher()
    r.call("children of /p", lambda: len(obs.get_children("/p", watch=shared)))
    for i in range(OWN_PARENTS):
        obs.get_children(f"/q{i}", watch=own)
    before = obs.exists("/p")
    if end == "close":
        r.note("closeSession", owner.call(OpCode.CLOSE_SESSION).header.err)
    owner.close()  # without closeSession, the session expires after its 4 s
    r.note("event on /p", shared.wait(1, timeout=20))
    r.note("events on the own parents", sorted(own.wait(OWN_PARENTS, timeout=20)))
    # zetcd may delete the ephemerals in several transactions (docs/differences.md): the first
    # events can come before the last deletion, so wait for the session's end to finish
    parents = ["/p", *(f"/q{i}" for i in range(OWN_PARENTS))]
    wait_until(
        lambda: not any(obs.exists(p).numChildren for p in parents),
        20,
        "the session's ephemerals were never all deleted",
    )
    after = obs.exists("/p")
    r.note("cversion of /p moved by", after.cversion - before.cversion)
    r.note("pzxid of /p moved", after.pzxid > before.pzxid)
    r.call("children of /p after", obs.get_children, "/p")
    r.call("children of /q0 after", obs.get_children, "/q0")
    r.call("a child of /p after", obs.exists, "/p/e0")
    r.call("stat of /q39 after", obs.exists, f"/q{OWN_PARENTS - 1}")
    # the server still serves
    r.call("create after", obs.create, "/after")


def test_closing_a_session_with_more_ephemerals_than_one_etcd_transaction(diff: Diff) -> None:
    diff(lambda r: _many_ephemerals(r, "close"))


def test_expiry_of_a_session_with_more_ephemerals_than_one_etcd_transaction(diff: Diff) -> None:
    diff(lambda r: _many_ephemerals(r, "expire"))


def test_a_multi_of_many_deletes(diff: Diff) -> None:
    """Deleting a node takes one etcd operation for each of its keys that exists: 100 deletes
    under one parent fit one transaction of etcd's default 128."""

    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/m")
        t = zk.transaction()
        for i in range(100):
            t.create(f"/m/c{i}")
        r.call("100 creates", lambda: len(t.commit()))
        zk.set_acls("/m/c7", [*OPEN_ACL_UNSAFE, make_acl("ip", "127.0.0.1", read=True)])
        zk.create("/m/c9/grandchild")
        zk.delete("/m/c9/grandchild")
        t = zk.transaction()
        for i in range(100):
            t.delete(f"/m/c{i}")
        r.call("100 deletes", t.commit)
        r.call("stat /m", zk.exists, "/m")
        r.call("recreate c7", zk.create, "/m/c7")
        r.call("its ACL", lambda: zk.get_acls("/m/c7")[0])
        r.call("recreate c9", zk.create, "/m/c9")
        r.call("its stat", zk.exists, "/m/c9")

    diff(scenario)


def test_a_multi_larger_than_one_etcd_transaction_is_refused(zetcd: ZetcdServer) -> None:
    """ZooKeeper would commit it; zetcd cannot (it would not be one transaction): it fails as a
    multi whose first op failed with BadArguments (per-op results, header err 0, a zxid spent:
    what every client library reads as a failed multi), nothing applied, the session and its
    connection carry on."""
    root = f"/big-{uuid.uuid4().hex[:10]}"
    c = RawClient(zetcd.address)
    c.connect()
    bystander = RawClient(zetcd.address)
    bystander.connect()
    assert c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.err == 0
    ops = tuple(
        MultiOp(OpCode.CREATE, CreateRequest(f"{root}/c{i}", b"", OPEN, 0)) for i in range(300)
    )
    r = c.call(OpCode.MULTI, MultiRequest(ops))
    refused = [Err.BAD_ARGUMENTS] + [Err.RUNTIME_INCONSISTENCY] * 299
    assert r.header.err == 0 and [r.err for r in r.body.results] == refused
    assert r.header.zxid > 0
    listing = c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False))
    assert listing.header.err == 0 and listing.body.children == ()
    # the same multi, cut to what fits, commits on the same connection
    assert c.call(OpCode.MULTI, MultiRequest(ops[:100])).header.err == 0
    r = c.call(OpCode.MULTI, MultiRequest(ops[100:]))
    assert [r.err for r in r.body.results] == refused[:200]
    # a multi that fails on one of its ops needs no room in etcd: ZooKeeper's per-op results
    t = c.call(OpCode.MULTI, MultiRequest(ops[100:] + ops[:1]))
    assert t.header.err == 0
    assert [r.err for r in t.body.results] == [0] * 200 + [Err.NODE_EXISTS]
    assert c.call(OpCode.DELETE, DeleteRequest(f"{root}/c0", -1)).header.err == 0
    assert bystander.call(OpCode.EXISTS, ExistsRequest(f"{root}/c1", False)).header.err == 0
    c.close()
    bystander.close()


def test_the_kazoo_error_of_a_refused_multi(
    zetcd: ZetcdServer, kazoo_client_factory: KazooClientFactory
) -> None:
    zk = kazoo_client_factory(zetcd.address, f"/bigk-{uuid.uuid4().hex[:10]}")
    t = zk.transaction()
    for i in range(300):
        t.create(f"/c{i}")
    results = t.commit()  # a failed transaction: kazoo returns the per-op results
    assert isinstance(results[0], BadArgumentsError), results[:2]
    assert all(isinstance(r, RuntimeInconsistency) for r in results[1:]), results[:2]
    assert zk.get_children("/") == []
    assert zk.create("/after") == "/after"


def test_writes_on_very_long_paths_fit_an_etcd_that_takes_what_zookeeper_takes(
    zookeeper: ZooKeeperServer,
) -> None:
    """A transaction names a path in several keys, so a write on a path of 400,000 characters
    or more needs more than etcd's default 1.5 MiB per request; with the embedded etcd's
    --max-request-bytes (told to zetcd too) every such write ZooKeeper takes fits."""
    limit = str(MAX_REQUEST_BYTES)
    root = f"/long-{uuid.uuid4().hex[:8]}"
    expected = _long_paths(zookeeper.address, root)
    with (
        EtcdServer(extra_args=("--max-request-bytes", limit)) as etcd,
        ZetcdServer(etcd.endpoint, extra_args=("--etcd-max-request-bytes", limit)) as zetcd,
    ):
        assert _long_paths(zetcd.address, root) == expected
    assert expected == [0] * 9


def _long_paths(address: str, root: str) -> list[int]:
    c = RawClient(address)
    c.connect()
    own = (ACL(31, Id("world", "anyone")), ACL(1, Id("ip", "127.0.0.1")))
    c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
    acl_path = f"{root}/{'a' * 800_000}"
    multi_path = f"{root}/{'m' * 600_000}"
    errs = [
        c.call(OpCode.CREATE, CreateRequest(acl_path, b"", own, 0)).header.err,
        c.call(OpCode.SET_ACL, SetACLRequest(acl_path, OPEN, -1)).header.err,
        c.call(OpCode.SET_ACL, SetACLRequest(acl_path, own, -1)).header.err,
        c.call(OpCode.DELETE, DeleteRequest(acl_path, -1)).header.err,
    ]
    for op in (
        MultiOp(OpCode.CREATE, CreateRequest(multi_path, b"", OPEN, 0)),
        MultiOp(OpCode.SET_DATA, SetDataRequest(multi_path, b"x", -1)),
        MultiOp(OpCode.DELETE, DeleteRequest(multi_path, -1)),
    ):
        r = c.call(OpCode.MULTI, MultiRequest((op,)))
        errs.append(r.header.err or r.body.results[0].err)
    for path in (acl_path, multi_path):
        errs.append(c.call(OpCode.EXISTS, ExistsRequest(path, False)).header.err - Err.NO_NODE)
    c.close()
    return errs
