"""Every 3.4 operation, run against real ZooKeeper 3.8 and zetcd: the transcripts must agree."""

from __future__ import annotations

import uuid

from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from tests.differential import Diff, Recorder
from tests.rawclient import RawClient
from zetcd.emulation.acls import digest_id
from zetcd.proto.constants import OpCode
from zetcd.proto.records import (
    ACL,
    AuthPacket,
    CreateRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    RequestHeader,
    SetACLRequest,
    SetDataRequest,
)


def test_create_get_set_delete(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        r.call("create", zk.create, "/a", b"hello")
        r.call("get", zk.get, "/a")
        r.call("exists", zk.exists, "/a")
        r.call("exists missing", zk.exists, "/missing")
        r.call("get missing", zk.get, "/missing")
        r.call("set", zk.set, "/a", b"world")
        r.call("set bad version", zk.set, "/a", b"x", version=7)
        r.call("set right version", zk.set, "/a", b"y", version=1)
        r.call("get after sets", zk.get, "/a")
        r.call("create again", zk.create, "/a")
        r.call("create no parent", zk.create, "/x/y")
        r.call("create child", zk.create, "/a/b", b"")
        r.call("delete not empty", zk.delete, "/a")
        r.call("delete bad version", zk.delete, "/a/b", version=3)
        r.call("delete child", zk.delete, "/a/b", version=0)
        r.call("parent after child delete", zk.get, "/a")
        r.call("delete", zk.delete, "/a")
        r.call("delete missing", zk.delete, "/a")
        r.call("get deleted", zk.exists, "/a")

    diff(scenario)


def test_stat_fields_and_cversion(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/p")
        for i in range(3):
            r.call(f"create c{i}", zk.create, f"/p/c{i}", b"x" * i)
        r.call("stat p", zk.exists, "/p")
        r.call("delete c1", zk.delete, "/p/c1")
        r.call("stat p after delete", zk.exists, "/p")
        r.call("set p", zk.set, "/p", b"data")
        r.call("stat p after set", zk.exists, "/p")
        r.call("children", zk.get_children, "/p")
        r.call("children2", zk.get_children, "/p", include_data=True)
        r.call("child stat", zk.exists, "/p/c2")

    diff(scenario)


def test_sequential_names_follow_parent_cversion(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/q")
        r.call("seq 1", zk.create, "/q/n-", sequence=True)
        r.call("plain", zk.create, "/q/plain")
        r.call("delete plain", zk.delete, "/q/plain")
        r.call("seq 2", zk.create, "/q/n-", sequence=True)
        r.call("seq ephemeral", zk.create, "/q/e-", ephemeral=True, sequence=True)
        r.call("seq no prefix", zk.create, "/q/", sequence=True)
        r.call("children", zk.get_children, "/q")

    diff(scenario)


def test_ephemerals(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        a = r.client()
        b = r.client()
        a.create("/dir")
        r.call("eph", a.create, "/dir/e", b"v", ephemeral=True)
        r.call("eph stat", b.exists, "/dir/e")
        r.call("child of eph", a.create, "/dir/e/child")
        r.call("seq child of eph", a.create, "/dir/e/child", sequence=True)
        r.call("dir before close", b.exists, "/dir")
        a.stop()
        a.close()
        r.call("eph after close", b.exists, "/dir/e")
        r.call("dir after close", b.exists, "/dir")
        r.call("delete dir", b.delete, "/dir")

    diff(scenario)


def test_root_and_special_paths(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client(chroot=False)
        r.call("create root", zk.create, "/")
        r.call("delete root", zk.delete, "/")
        r.call("delete /zookeeper", zk.delete, "/zookeeper")
        r.call("delete /zookeeper/quota", zk.delete, "/zookeeper/quota")
        r.call("sync root", zk.sync, "/")
        r.call("zookeeper children", zk.get_children, "/zookeeper")
        r.call("quota", zk.get, "/zookeeper/quota")
        r.call("config acl", zk.get_acls, "/zookeeper/config")
        r.call("zookeeper acl", zk.get_acls, "/zookeeper")

    diff(scenario)


def test_invalid_paths_are_bad_arguments(diff: Diff) -> None:
    bad = ["/a/", "/a//b", "/a/./b", "/a/../b", "/.", "/..", "/a\u0001b", "/a\ufff5"]

    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/a")
        for p in bad:
            # kazoo validates some paths itself; the raw-protocol tests cover the rest
            r.call(f"create {p!r}", zk.create, p)
            r.call(f"set {p!r}", zk.set, p, b"")
            r.call(f"exists {p!r}", zk.exists, p)

    diff(scenario)


def test_acls_stored_and_returned(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        acl = [make_acl("world", "anyone", read=True, write=True)]
        r.call("create with acl", zk.create, "/n", b"", acl=acl)
        r.call("get acl", zk.get_acls, "/n")
        digest = make_digest_acl("user", "pw", all=True)
        r.call("set acl", zk.set_acls, "/n", [digest])
        r.call("get acl 2", zk.get_acls, "/n")
        r.call("set acl bad version", zk.set_acls, "/n", [digest], version=5)
        r.call("set acl empty", zk.set_acls, "/n", [])
        r.call("bad scheme", zk.create, "/m", b"", acl=[make_acl("nope", "x", all=True)])
        r.call("world not anyone", zk.create, "/m", b"", acl=[make_acl("world", "x", all=True)])
        r.call("auth without auth", zk.create, "/m", b"", acl=[make_acl("auth", "", all=True)])
        r.call("bad ip", zk.create, "/m", b"", acl=[make_acl("ip", "1.2.3.4/99", all=True)])
        r.call("good ip", zk.create, "/m", b"", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
        zk.add_auth("digest", "me:secret")
        r.call("auth with auth", zk.create, "/k", b"", acl=[make_acl("auth", "", all=True)])
        r.call("auth acl", zk.get_acls, "/k")

    diff(scenario)


def test_getacl_masks_digest_ids_as_javas_regex_does(diff: Diff) -> None:
    """Without ADMIN, getACL shows a digest id through ``replaceAll(":.*", ":x")``: Java's
    ``.`` stops at a line terminator, and every ``:`` after one starts another mask."""
    ids = ["a:b", "a:b\nc", "a:b\nc:", "a:b\r\n", "a:b\rc", "a:b\x85c", "a:b\u2028c"]
    ids += ["a:b\u2029c", "a:b::", ":a", "a\n:b", "\u00e9:b\u00fc"]

    def scenario(r: Recorder) -> None:
        zk = r.client()
        acl = [make_acl("digest", ident, all=True) for ident in ids]
        acl.append(make_acl("world", "anyone", read=True))
        r.call("create", zk.create, "/n", b"", acl=acl)
        r.call("get acl without ADMIN", zk.get_acls, "/n")

    acls, _stat = diff(scenario)[-1][1]
    assert [ident for _perms, (_scheme, ident) in acls[:3]] == ["a:x", "a:x\nc", "a:x\nc:x"]


# ip ACL ids as ZooKeeper 3.8 reads them: IPv4 only, each part and the prefix length through
# Java's Integer.parseInt (a sign, leading zeros, digits of any script; not superscripts)
IP_IDS = [
    "1.2.3.4",
    "10.0.0.0/8",
    "1.2.3.4/\u00b2",
    "1.2.3.4/\u00b9",
    "1.2.3.4/\u2460",
    "1.2.3.4/1\u00b2",
    "::1",
    "fe80::/10",
    "::ffff:1.2.3.4",
    "01.2.3.4",
    "1.2.3.04",
    "0000000001.2.3.4",
    "+1.2.3.4",
    "-0.0.0.0",
    "1.2.3.4/+8",
    "1.2.3.4/-0",
    "\u0661.2.3.4",
    "1.2.3.\uff14",
    "\U0001d7cf.2.3.4",
    "1.2.3.4/",
    "1.2.3.4.",
    "1.2.3",
    "1.2.3.4/33",
    "1.2.3.4/-1",
    "1.2.3.4/2147483648",
    "256.1.1.1",
    "1.2.3.4/8/9",
    "",
    "1.2.3.4/" + "1" * 100_000,  # out of an int's range: refused, and at once
    "0" * 100_000 + "1.2.3.4",  # leading zeros are fine
]


def test_ip_acl_ids_are_read_as_zookeeper_reads_them(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/s")
        for i, ident in enumerate(IP_IDS):
            acl = [make_acl("ip", ident, all=True)]
            r.call(f"create #{i} {ident[:30]!r}", zk.create, f"/i{i}", b"", acl=acl)
            r.call(
                f"setACL #{i} {ident[:30]!r}",
                zk.set_acls,
                "/s",
                [*acl, make_acl("world", "anyone", all=True)],
            )
            t = zk.transaction()
            t.create(f"/t{i}", b"", acl=acl)
            r.call(f"multi #{i} {ident[:30]!r}", t.commit)
        # which ids the client's address (127.0.0.1) matches
        for i, ident in enumerate(
            [
                "127.0.0.1",
                "127.000.0.01",
                "127.0.0.0/8",
                "0.0.0.0/0",
                "127.0.0.2/31",
                "127.0.0.2/30",
                "10.0.0.0/8",
                "+127.0.0.1",
            ]
        ):
            zk.create(
                f"/m{i}",
                b"x",
                acl=[make_acl("ip", ident, read=True), make_acl("world", "anyone", admin=True)],
            )
            r.call(f"read under {ident!r}", zk.get, f"/m{i}")

    diff(scenario)


def test_auth_acl_expands_in_zookeepers_order_of_the_ids(diff: Diff) -> None:
    # ZooKeeper walks the connection's ids in its ConcurrentHashMap's order, not as added
    def scenario(r: Recorder) -> None:
        zk = r.client()
        for user in ("u1", "u2", "zed", "alice", "bob"):
            zk.add_auth("digest", f"{user}:pw")
        r.call("create auth", zk.create, "/k", b"", acl=[make_acl("auth", "", all=True)])
        r.call("acl after create", zk.get_acls, "/k")
        r.call("set auth", zk.set_acls, "/k", [make_acl("auth", "", read=True)])
        r.call("acl after set", zk.get_acls, "/k")

    diff(scenario)


def test_multi_success_and_failure(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/m")
        t = zk.transaction()
        t.create("/m/a", b"1")
        t.create("/m/b", b"2")
        t.set_data("/m/a", b"3")
        t.check("/m/a", 1)
        r.call("multi ok", t.commit)
        r.call("m after", zk.exists, "/m")
        r.call("a after", zk.get, "/m/a")
        t = zk.transaction()
        t.create("/m/c")
        t.check("/m/a", 9)
        t.delete("/m/b")
        r.call("multi fail", t.commit)
        r.call("c not created", zk.exists, "/m/c")
        r.call("b kept", zk.exists, "/m/b")
        t = zk.transaction()
        t.delete("/m/a")
        t.create("/m/a", b"again")
        t.create("/m/s-", sequence=True)
        t.create("/m/s-", sequence=True)
        r.call("multi recreate", t.commit)
        r.call("a recreated", zk.get, "/m/a")
        r.call("m cversion", zk.exists, "/m")
        t = zk.transaction()
        t.create("/m/x")
        t.delete("/m/x")
        r.call("multi create delete", t.commit)
        r.call("m cversion 2", zk.exists, "/m")
        r.call("empty multi", zk.transaction().commit)

    diff(scenario)


def test_watches_trigger_table(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        other = r.client()
        zk.create("/w")
        zk.create("/w/c")
        data = r.watcher()
        ex = r.watcher()
        child = r.watcher()
        zk.get("/w", watch=data)
        zk.exists("/w", watch=ex)
        zk.get_children("/w", watch=child)
        other.set("/w/c", b"child data")  # must not fire the parent's child watch
        other.set("/w", b"x")  # one NodeDataChanged to the data and exists watchers each
        r.note("data", data.wait(1))
        r.note("exists", ex.wait(1))
        other.create("/w/d")
        r.note("child", child.wait(1))
        gone = r.watcher()
        gone_child = r.watcher()
        missing = r.watcher()
        zk.exists("/w/c", watch=gone)
        zk.get_children("/w/c", watch=gone_child)
        zk.exists("/w/new", watch=missing)
        other.delete("/w/c")
        other.create("/w/new")
        r.note("deleted data", gone.wait(1))
        r.note("deleted child", gone_child.wait(1))
        r.note("created", missing.wait(1))
        r.note("no more data events", data.events)

    diff(scenario)


def test_events_are_checked_against_the_acl_at_their_change_in_a_multi(diff: Diff) -> None:
    """ZooKeeper checks each watch event against READ with the node's ACL (the parent's, for
    NodeChildrenChanged) as it is at that change, not after the whole multi: one multi replaces
    a readable node by an unreadable one and the other way round, creates and deletes an
    unreadable node, and adds and removes a child before its parent is replaced. zetcd checked
    them against the ACLs after the transaction (none at all for a node gone by then)."""

    def scenario(r: Recorder) -> None:
        hidden = [make_acl("ip", "10.0.0.0/8", all=True)]
        writer = r.client()
        watcher = r.client()
        writer.create("/s")
        writer.create("/t", acl=hidden)
        writer.create("/p")
        events = {name: r.watcher() for name in ("s", "t", "u", "v", "p")}
        for name in ("s", "t", "u", "v"):
            watcher.exists(f"/{name}", watch=events[name])
        watcher.get_children("/p", watch=events["p"])
        last = r.watcher()  # kazoo runs the callbacks in order: this one's comes after all
        watcher.exists("/z", watch=last)
        tx = writer.transaction()
        tx.delete("/s")
        tx.create("/s", acl=hidden)
        tx.delete("/t")
        tx.create("/t")
        tx.create("/u", acl=hidden)
        tx.delete("/u")
        tx.create("/v")
        tx.delete("/v")
        tx.create("/p/x")
        tx.delete("/p/x")
        tx.delete("/p")
        tx.create("/p", acl=hidden)
        r.call("multi", tx.commit)
        writer.create("/z")
        r.note("last", last.wait(1))
        r.note("events", {name: w.events for name, w in events.items()})

    diff(scenario)


def test_events_are_checked_against_the_acl_at_their_change_in_pipelined_writes(
    diff: Diff,
) -> None:
    """Pipelined writes share one etcd transaction on zetcd (group commit), and a setACL among
    them changes the ACL its node's earlier events are checked against: a setData, a create,
    and a child's create, each followed by a setACL that hides the node from the watcher, must
    still notify it, as on ZooKeeper. (The writer may read them; in the end it opens the
    parent up again, so that a walk of the tree by a later test finds every node.)"""
    hidden = (ACL(31, Id("digest", digest_id("u1:p1"))),)
    world = (ACL(31, Id("world", "anyone")),)

    def transcript(address: str) -> list[object]:
        root = f"/acl-pipe-{uuid.uuid4().hex[:8]}"
        writer, watcher = RawClient(address), RawClient(address)
        writer.connect()
        watcher.connect()
        writer.request(OpCode.AUTH, AuthPacket(0, "digest", b"u1:p1"), xid=-4)
        assert writer.reply().header.err == 0
        for path in (root, f"{root}/a", f"{root}/c"):
            assert writer.call(OpCode.CREATE, CreateRequest(path, b"", world, 0)).header.err == 0
        watched = [
            watcher.call(OpCode.GET_DATA, GetDataRequest(f"{root}/a", True)).header.err,
            watcher.call(OpCode.EXISTS, ExistsRequest(f"{root}/n", True)).header.err,
            watcher.call(OpCode.GET_CHILDREN, GetChildrenRequest(f"{root}/c", True)).header.err,
        ]
        burst = [
            (OpCode.SET_DATA, SetDataRequest(f"{root}/a", b"1", -1)),
            (OpCode.SET_ACL, SetACLRequest(f"{root}/a", hidden, -1)),
            (OpCode.CREATE, CreateRequest(f"{root}/n", b"", world, 0)),
            (OpCode.SET_ACL, SetACLRequest(f"{root}/n", hidden, -1)),
            (OpCode.CREATE, CreateRequest(f"{root}/c/k", b"", world, 0)),
            (OpCode.SET_ACL, SetACLRequest(f"{root}/c", hidden, -1)),
        ]
        frames = b""
        for opcode, body in burst:  # in one send: zetcd has them all before its transaction
            writer.xid += 1
            frames += writer.proto.send_request(RequestHeader(writer.xid, opcode), body)
        writer.send_raw(frames)
        errs = [writer.reply().header.err for _ in burst]
        # the watcher's next reply comes after every event of the writes before it
        watcher.call(OpCode.EXISTS, ExistsRequest(root, False))
        events = [(e.type, e.path[len(root) :]) for e in watcher.pending]
        assert writer.call(OpCode.SET_ACL, SetACLRequest(f"{root}/c", world, -1)).header.err == 0
        writer.close()
        watcher.close()
        return [watched, errs, events]

    ours = transcript(diff.zetcd)
    assert ours == transcript(diff.zookeeper)
    assert ours[2] == [(3, "/a"), (1, "/n"), (4, "/c")]


def test_one_notification_per_watcher(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/o")
        events = r.watcher()
        zk.get("/o", watch=events)
        zk.exists("/o", watch=events)
        zk.set("/o", b"1")
        zk.set("/o", b"2")
        events.wait(2, timeout=1.0)
        r.note("events", events.events)

    diff(scenario)


def test_ephemeral_expiry_fires_watches(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        owner = r.client(timeout=4.0)
        obs = r.client()
        owner.create("/x")
        owner.create("/x/e", ephemeral=True)
        gone = r.watcher()
        kids = r.watcher()
        obs.exists("/x/e", watch=gone)
        obs.get_children("/x", watch=kids)
        owner.stop()  # closeSession
        r.note("gone", gone.wait(1))
        r.note("kids", kids.wait(1))
        r.call("parent", obs.exists, "/x")

    diff(scenario)


def test_long_acl_ids_and_long_acl_lists(diff: Diff) -> None:
    """ZooKeeper bounds neither an ACL id's length nor an ACL list's (only the request size)."""

    def scenario(r: Recorder) -> None:
        zk = r.client()
        zk.create("/a")
        long_id = make_acl("digest", "u:" + "h" * 70_000, all=True)
        r.call("setACL long id", zk.set_acls, "/a", [long_id, *OPEN_ACL_UNSAFE])
        r.call(
            "getACL", lambda: [(a.perms, a.id.scheme, len(a.id.id)) for a in zk.get_acls("/a")[0]]
        )
        r.call("create with it", zk.create, "/a/c", acl=[*OPEN_ACL_UNSAFE, long_id])
        many = [make_acl("ip", f"10.{i // 256}.{i % 256}.1", read=True) for i in range(3000)]
        r.call("setACL 3000 entries", zk.set_acls, "/a/c", [*many, *many[:10], *OPEN_ACL_UNSAFE])
        r.call("their count", lambda: len(zk.get_acls("/a/c")[0]))
        r.call("delete", zk.delete, "/a/c")

    diff(scenario)
