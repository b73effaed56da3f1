"""One regression test per divergence of the Go zetcd from ZooKeeper (the team's list of them,
shared/docs/zetcd-go.md, kept beside this repository), numbered as there and named for the
behaviour the Go zetcd got wrong. Each runs on real ZooKeeper and on zetcd with the same
assertions, so what is asserted is ZooKeeper's behaviour. (16 is about the cross-checker and is
tested with it.)"""

from __future__ import annotations

import struct
import uuid

import pytest

from tests.conftest import Target
from tests.rawclient import Closed, RawClient
from tests.servers import four_letter_word
from zetcd.proto.constants import Err, EventType, OpCode
from zetcd.proto.records import (
    ACL,
    CheckVersionRequest,
    CheckWatchesRequest,
    ConnectRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiOp,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
    SyncRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)


@pytest.fixture
def c(target: Target) -> RawClient:
    client = RawClient(target.address)
    client.connect()
    return client


@pytest.fixture
def root(c: RawClient) -> str:
    path = f"/go-{uuid.uuid4().hex[:10]}"
    assert c.call(OpCode.CREATE, CreateRequest(path, b"", OPEN, 0)).header.err == 0
    return path


def test_01_modern_opcodes_are_answered(c: RawClient, root: str) -> None:
    r = c.call(OpCode.CREATE2, CreateRequest(root + "/a", b"", OPEN, 0))
    assert r.header.err == 0 and r.body.stat.czxid > 0
    assert c.call(OpCode.CREATE_CONTAINER, CreateRequest(root + "/c", b"", OPEN, 4)).header.err == 0
    assert c.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root, 3)).header.err == Err.NO_WATCHER
    c.request(999)
    assert c.reply().header.err == Err.UNIMPLEMENTED
    c.close()


def test_02_acls_are_served_and_enforced(c: RawClient, root: str) -> None:
    read_only = (ACL(1, Id("world", "anyone")),)
    assert c.call(OpCode.SET_ACL, SetACLRequest(root, read_only, -1)).header.err == 0
    r = c.call(OpCode.GET_ACL, GetACLRequest(root))
    assert r.header.err == 0 and r.body.acl == read_only and r.body.stat.aversion == 1
    assert c.call(OpCode.SET_DATA, SetDataRequest(root, b"x", -1)).header.err == Err.NO_AUTH
    bad = (ACL(31, Id("nosuchscheme", "x")),)
    assert (
        c.call(OpCode.CREATE, CreateRequest(root + "/x", b"", bad, 0)).header.err == Err.INVALID_ACL
    )
    c.close()


def test_03_container_and_ttl_flags_do_not_crash(c: RawClient, root: str, target: Target) -> None:
    assert c.call(OpCode.CREATE, CreateRequest(root + "/f4", b"", OPEN, 4)).header.err == 0
    ttl = CreateTTLRequest(root + "/t", b"", OPEN, 5, 60000)
    assert c.call(OpCode.CREATE_TTL, ttl).header.err == 0
    assert (
        c.call(OpCode.CREATE, CreateRequest(root + "/f9", b"", OPEN, 9)).header.err
        == Err.BAD_ARGUMENTS
    )
    c.close()
    assert four_letter_word(target.host, target.port, "ruok") == "imok"


def test_04_no_children_for_ephemerals(c: RawClient, root: str) -> None:
    assert c.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1)).header.err == 0
    r = c.call(OpCode.CREATE, CreateRequest(root + "/e/child", b"", OPEN, 0))
    assert r.header.err == Err.NO_CHILDREN_FOR_EPHEMERALS
    c.close()


def test_05_root_rules(c: RawClient) -> None:
    assert c.call(OpCode.CREATE, CreateRequest("/", b"", OPEN, 0)).header.err == Err.NODE_EXISTS
    assert c.call(OpCode.DELETE, DeleteRequest("/", -1)).header.err == Err.BAD_ARGUMENTS
    assert c.call(OpCode.SYNC, SyncRequest("/")).header.err == 0
    r = c.call(OpCode.GET_CHILDREN, GetChildrenRequest("/", False))
    assert "" not in r.body.children and "zookeeper" in r.body.children
    c.close()


def test_06_sequential_numbering_after_deletes(c: RawClient, root: str) -> None:
    for name in ("a", "b"):
        c.call(OpCode.CREATE, CreateRequest(f"{root}/{name}", b"", OPEN, 0))
    c.call(OpCode.DELETE, DeleteRequest(root + "/a", -1))
    r = c.call(OpCode.CREATE, CreateRequest(root + "/q", b"", OPEN, 2))
    assert r.body.path == root + "/q0000000002"  # the parent's stored (create-only) cversion
    assert c.call(OpCode.EXISTS, ExistsRequest(root, False)).body.stat.cversion == 4
    c.close()


def test_07_failed_multi_reports_per_op_results(c: RawClient, root: str) -> None:
    ops = (
        MultiOp(OpCode.CREATE, CreateRequest(root + "/m", b"", OPEN, 0)),
        MultiOp(OpCode.CHECK, CheckVersionRequest(root, 42)),
        MultiOp(OpCode.DELETE, DeleteRequest(root + "/zz", -1)),
    )
    r = c.call(OpCode.MULTI, MultiRequest(ops))
    assert r.header.err == 0
    assert [(x.type, x.err) for x in r.body.results] == [(-1, 0), (-1, -103), (-1, -2)]
    assert c.call(OpCode.EXISTS, ExistsRequest(root + "/m", False)).header.err == Err.NO_NODE
    c.close()


def test_08_ephemeral_cleanup_bumps_the_parent(target: Target, c: RawClient, root: str) -> None:
    owner = RawClient(target.address)
    owner.connect()
    owner.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1))
    before = c.call(OpCode.EXISTS, ExistsRequest(root, False)).body.stat
    owner.call(OpCode.CLOSE_SESSION)
    owner.close()
    after = c.call(OpCode.EXISTS, ExistsRequest(root, False)).body.stat
    assert (after.cversion, after.numChildren) == (before.cversion + 1, 0)
    assert after.pzxid > before.pzxid
    assert c.call(OpCode.DELETE, DeleteRequest(root, -1)).header.err == 0
    c.close()


def test_09_watch_trigger_table(target: Target, c: RawClient, root: str) -> None:
    other = RawClient(target.address)
    other.connect()
    c.call(OpCode.CREATE, CreateRequest(root + "/k", b"", OPEN, 0))
    c.call(OpCode.GET_DATA, GetDataRequest(root, True))
    c.call(OpCode.EXISTS, ExistsRequest(root, True))
    c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
    c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root + "/k", True))
    other.call(OpCode.SET_DATA, SetDataRequest(root + "/k", b"x", -1))  # fires nothing
    other.call(OpCode.SET_DATA, SetDataRequest(root, b"x", -1))  # one NodeDataChanged
    other.call(OpCode.DELETE, DeleteRequest(root + "/k", -1))  # NodeDeleted k, children of root
    c.call(OpCode.SYNC, SyncRequest("/"))
    got = [(e.type, e.path) for e in c.pending]
    assert got == [
        (EventType.NODE_DATA_CHANGED, root),
        (EventType.NODE_DELETED, root + "/k"),
        (EventType.NODE_CHILDREN_CHANGED, root),
    ]
    other.close()
    c.close()


def test_10_ping_replies_with_xid_minus_two(c: RawClient) -> None:
    c.request(OpCode.PING, xid=12345)
    assert struct.unpack(">i", c.raw_reply()[:4]) == (-2,)
    c.close()


def test_11_timeout_negotiated_zxid_checked_version_ignored(target: Target) -> None:
    c = RawClient(target.address)
    assert c.connect(timeout=1).timeOut == 4000
    c.close()
    weird = RawClient(target.address)
    weird.send_raw(weird.proto.send_connect(ConnectRequest(7, 0, 100000, 0, bytes(16), None)))
    resp = weird.next()
    assert resp.timeOut == 40000 and resp.protocolVersion == 0
    weird.close()
    ahead = RawClient(target.address)
    ahead.send_raw(ahead.proto.send_connect(ConnectRequest(0, 1 << 62, 10000, 0, bytes(16), None)))
    with pytest.raises(Closed):
        ahead.next()
    ahead.close()


def test_11b_a_zxid_just_past_the_servers_last_is_refused(
    target: Target, c: RawClient, root: str
) -> None:
    """One past the last zxid is refused too, for a new session and a resumed one (zetcd's
    zxids are an etcd revision and a position in it: the position counts). Another session's
    transaction between reading the last zxid and connecting would make it valid, so a few
    tries: ZooKeeper refuses nearly always, and each refusal must come from the check."""
    spare = RawClient(target.address)
    detached = spare.connect()
    spare.close()
    refused = {"new": 0, "resumed": 0}
    for _ in range(5):
        last = c.call(OpCode.EXISTS, ExistsRequest(root, False)).header.zxid
        for kind, sid, passwd in (
            ("new", 0, bytes(16)),
            ("resumed", detached.sessionId, detached.passwd),
        ):
            other = RawClient(target.address)
            request = ConnectRequest(0, last + 1, 10000, sid, passwd, None)
            other.send_raw(other.proto.send_connect(request))
            try:
                other.next()
            except Closed:
                refused[kind] += 1
            other.close()
    c.close()
    assert refused["new"] >= 3 and refused["resumed"] >= 3, refused


def test_12_expired_session_answer_has_a_16_byte_password(target: Target) -> None:
    c = RawClient(target.address)
    r = c.connect(session_id=0x7EADBEEF, passwd=bytes(16))
    assert (r.timeOut, r.sessionId, r.passwd) == (0, 0, bytes(16))
    c.close()


def test_13_four_letter_words(target: Target) -> None:
    assert four_letter_word(target.host, target.port, "srvr").startswith(
        "Zookeeper version: 3.8.0-"
    )
    assert "zookeeper.version=3.8.0-" in four_letter_word(target.host, target.port, "envi")
    assert four_letter_word(target.host, target.port, "mntr").startswith("zk_version\t3.8.0-")
    assert four_letter_word(target.host, target.port, "isro") == "rw"


def test_14_bad_version_spends_a_zxid(c: RawClient, root: str) -> None:
    z1 = c.call(OpCode.SET_DATA, SetDataRequest(root, b"", -1)).header.zxid
    bad = c.call(OpCode.SET_DATA, SetDataRequest(root, b"", 99))
    assert bad.header.err == Err.BAD_VERSION and bad.header.zxid > z1
    c.close()


def test_15_empty_path_and_large_replies(c: RawClient, root: str) -> None:
    assert c.call(OpCode.CREATE, CreateRequest("", b"", OPEN, 0)).header.err == Err.BAD_ARGUMENTS
    big = b"z" * (1024 * 1024 - 200)
    assert c.call(OpCode.SET_DATA, SetDataRequest(root, big, -1)).header.err == 0
    assert c.call(OpCode.GET_DATA, GetDataRequest(root, False)).body.data == big
    c.close()
