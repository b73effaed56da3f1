"""Divergences zetcd-fuzz found in zetcd, kept as regressions (replayed against both servers)."""

from __future__ import annotations

from fuzz.ops import (
    WORLD,
    AddWatch,
    Auth,
    Check,
    Close,
    Create,
    Delete,
    Drop,
    Exists,
    Expire,
    GetACL,
    GetChildren,
    GetData,
    GetEphemerals,
    Multi,
    Open,
    Pipeline,
    RemoveWatches,
    Resume,
    SetACL,
    SetData,
    Step,
    Sync,
    WhoAmI,
)
from fuzz.replay import run_steps
from oracle.sides import Side
from tests.servers import ZooKeeperServer
from tests.zetcd_server import ZetcdServer
from zetcd.proto.constants import OpCode


def test_resume_renegotiates_the_timeout_that_expiry_follows(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A session opened with a 30 s timeout, resumed asking 4 s (the fuzzer's Expire step does
    that), then dropped: ZooKeeper expires it after the renegotiated 4 s. zetcd kept the lease
    granted for 30 s; the session record now moves to a lease of the new TTL."""
    steps = [Step(session=0, op=Open(timeout=30000, read_only=False)), Step(session=0, op=Expire())]
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()


def test_read_only_connect_is_answered_read_write(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A client asking for a read-only session gets readOnly=false from a standalone server."""
    steps = [Step(session=0, op=Open(timeout=30000, read_only=True))]
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()


def test_multiread_mixing_reads_and_writes_is_marshalling_error_without_body(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """ZooKeeper cannot deserialize a multiRead that mixes reads and writes: -5, no body (a
    multiRead of writes only deserializes, and gets -5 with an empty result list)."""
    ops = (GetData(path="/", watch=False), SetData(path="/", data=b"", version=-1))
    steps = [
        Step(session=0, op=Open(timeout=30000, read_only=False)),
        Step(session=0, op=Multi(ops=ops, read=True)),
    ]
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()


def _assert_same(zookeeper: ZooKeeperServer, zetcd: ZetcdServer, steps: list[Step]) -> None:
    run = run_steps({Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}, steps)
    assert not run.divergences, run.describe()


OPEN = Step(session=0, op=Open(timeout=30000, read_only=False))


def test_multi_of_reads_only_is_marshalling_error(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A multi (14) holding only a read cannot be deserialized by ZooKeeper: -5, no body."""
    _assert_same(zookeeper, zetcd, [OPEN, Step(session=0, op=Multi(ops=(GetData("/", False),)))])


def test_create_ttl_in_multi_with_a_plain_mode_is_a_plain_create(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """Inside a multi the node type follows the flags: a createTTL op with flags 0 and a ttl is
    a plain create (the ttl is ignored), so a later failing op reports it as Ok then rolled back."""
    create = Create("/a", b"", WORLD, 0, OpCode.CREATE_TTL, 3600000)
    _assert_same(
        zookeeper,
        zetcd,
        [OPEN, Step(session=0, op=Multi(ops=(create, Check("/b", 0))))],
    )
    failing_first = (SetData("/", b"x", 0), create)
    _assert_same(zookeeper, zetcd, [OPEN, Step(session=0, op=Multi(ops=failing_first))])


def test_who_am_i_lists_auth_ids_before_the_ip(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    auth = Step(session=0, op=Auth("digest", b"u1:p1"))
    _assert_same(zookeeper, zetcd, [OPEN, auth, Step(session=0, op=WhoAmI())])


def test_sync_echoes_the_path_in_jute_modified_utf8(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """ZooKeeper's reply to sync carries the path re-encoded by jute (a supplementary
    character as a CESU-8 surrogate pair), not the bytes the client sent."""
    _assert_same(zookeeper, zetcd, [OPEN, Step(session=0, op=Sync("/\U0001f600"))])


def test_characters_outside_the_bmp_everywhere_a_string_goes(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A client sending 4-byte UTF-8 (kazoo, the C client): ZooKeeper holds a surrogate pair,
    rejects it in paths it validates, and writes it back in CESU-8 wherever it echoes it."""
    e = "\U0001f600"
    steps = [
        OPEN,
        Step(session=0, op=Create(f"/{e}")),
        Step(session=0, op=Create("/a")),
        Step(session=0, op=Exists(f"/{e}", True)),
        Step(session=0, op=GetData(f"/{e}")),
        Step(session=0, op=SetData(f"/{e}", b"x")),
        Step(session=0, op=Delete(f"/{e}")),
        Step(session=0, op=Sync(f"/a/{e}x")),
        Step(session=0, op=SetACL("/a", ((31, "digest", f"{e}:x"), (1, "world", "anyone")))),
        Step(session=0, op=GetACL("/a")),
        Step(session=0, op=Auth("digest", f"{e}:pw".encode())),
        Step(session=0, op=WhoAmI()),
        Step(session=0, op=Create("/a/b", b"", ((31, "auth", ""),), 0, OpCode.CREATE, -1)),
        Step(session=0, op=GetACL("/a/b")),
        Step(session=0, op=Multi(ops=(Create("/a/c"), Delete(f"/a/{e}")))),
    ]
    _assert_same(zookeeper, zetcd, steps)


def test_a_closed_session_deletes_its_ephemerals_in_zookeepers_order(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """getEphemerals lists, and closeSession deletes, a session's ephemerals in the iteration
    order of a clone of the HashSet ZooKeeper keeps them in; a watcher sees the deletions so."""
    names = ["e", "lock-", "zz", "a1", "b", "n-", "q9", "x"] * 2
    steps = [OPEN, Step(session=1, op=Open(timeout=30000, read_only=False))]
    steps += [Step(session=0, op=Create("/p")), Step(session=0, op=Create("/p/d"))]
    for i, name in enumerate(names):
        steps.append(
            Step(session=0, op=Create(f"/p/{name}{i}", flags=1 | (2 if "-" in name else 0)))
        )
    steps += [Step(session=0, op=Delete("/p/b4")), Step(session=0, op=Delete("/p/x7"))]
    steps += [Step(session=1, op=GetChildren("/p", True)), Step(session=1, op=AddWatch("/p", 1))]
    steps += [Step(session=0, op=GetEphemerals("/")), Step(session=0, op=GetEphemerals("/p/n"))]
    steps += [Step(session=0, op=Close()), Step(session=1, op=GetChildren("/p"))]
    _assert_same(zookeeper, zetcd, steps)


def test_check_watches_on_a_path_without_a_slash_is_marshalling_error(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """ZooKeeper's PathParentIterator throws on a path with no '/': checkWatches answers -5
    (removeWatches does not walk the path: NoWatcher); "" is no watched path."""
    steps = [OPEN]
    for path in ("a", "", "/a"):
        for kind in (1, 2, 3):
            steps.append(Step(session=0, op=RemoveWatches(path, kind, True)))
        steps.append(Step(session=0, op=RemoveWatches(path, 3, False)))
    _assert_same(zookeeper, zetcd, steps)


def test_no_node_created_event_for_a_node_the_watcher_cannot_read(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """ZooKeeper checks READ on the new node before delivering NodeCreated to an exists watch."""
    steps = [
        OPEN,
        Step(session=1, op=Open(timeout=30000, read_only=False)),
        Step(session=0, op=Exists("/a", True)),
        Step(session=1, op=Create("/a", b"", ((31, "ip", "10.0.0.0/8"),), 0, OpCode.CREATE, -1)),
    ]
    _assert_same(zookeeper, zetcd, steps)


def test_events_go_only_to_watchers_that_may_read_and_withheld_ones_are_spent(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """Every event is checked against READ for the watcher's connection: the node's ACL for
    created/changed/deleted, the parent's for NodeChildrenChanged; a withheld one-shot watch is
    consumed all the same, and a recursive watch on an ancestor is filtered per event."""
    hidden = ((31, "ip", "10.0.0.0/8"),)
    steps = [
        OPEN,
        Step(session=1, op=Open(timeout=30000, read_only=False)),
        Step(session=1, op=Create("/p")),
        Step(session=1, op=Create("/q")),
        Step(session=0, op=Exists("/p/x", True)),
        Step(session=0, op=AddWatch("/q", 1)),
        Step(session=0, op=GetChildren("/p", True)),
        Step(session=1, op=Create("/p/x", b"", hidden, 0, OpCode.CREATE, -1)),
        Step(session=1, op=SetACL("/p/x", WORLD)),
        Step(session=1, op=SetData("/p/x", b"1")),
        Step(session=0, op=GetData("/p/x", True)),
        Step(session=1, op=SetACL("/p/x", hidden)),
        Step(session=1, op=Delete("/p/x")),
        Step(session=1, op=Create("/q/y")),
        Step(session=1, op=Create("/q/z", b"", hidden, 0, OpCode.CREATE, -1)),
        Step(session=1, op=SetData("/q/z", b"1")),
        Step(session=1, op=SetData("/q/y", b"1")),
        Step(session=1, op=SetACL("/q", hidden)),
        Step(session=1, op=SetData("/q", b"1")),
        Step(session=1, op=Delete("/q/y")),
    ]
    _assert_same(zookeeper, zetcd, steps)


def test_auth_is_lost_when_a_session_resumes_on_a_new_connection(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """Authentication belongs to the connection: a resumed session that does not send its auth
    again is only its ip, and a node with an `auth` ACL answers NoAuth."""
    auth = Step(session=0, op=Auth("digest", b"u1:p1"))
    resume = Step(session=0, op=Resume(timeout=30000, set_watches=0, wrong_password=False))
    _assert_same(zookeeper, zetcd, [OPEN, auth, resume, Step(session=0, op=WhoAmI())])
    steps = [
        OPEN,
        auth,
        Step(session=0, op=Create("/a", b"", ((31, "auth", ""),), 0, OpCode.CREATE, -1)),
        Step(session=0, op=Drop()),
        resume,
        Step(session=0, op=GetData("/a", False)),
    ]
    _assert_same(zookeeper, zetcd, steps)


def test_a_write_that_does_not_decode_keeps_its_place_among_pipelined_requests(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A multi holding a read does not decode (MarshallingError, a zxid spent); a session
    pipelines requests after it. zetcd answered a read after it before its error transaction
    was made (a read zxid below it) and committed a write after it first (found by the fuzzer's
    pipeline rule)."""
    steps = [
        OPEN,
        Step(
            session=0,
            op=Pipeline(
                (
                    Multi((Create("/b"), GetData("/", False))),
                    Exists("/b", False),
                    SetData("/", b"x"),
                    Multi((GetData("/", False),)),
                    Create("/c"),
                    SetACL("/c", WORLD),
                )
            ),
        ),
    ]
    _assert_same(zookeeper, zetcd, steps)


def test_a_sessions_events_come_after_the_replies_to_its_earlier_pipelined_writes(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A session watches a node and pipelines a failing setData, then setData of the node:
    ZooKeeper sends the first reply, then the event, then the second reply. zetcd committed both
    writes in one transaction and sent the event first (found by the fuzzer's pipeline rule);
    a write that may notify a session with a write before it in a transaction now goes in the
    next one."""
    steps = [
        OPEN,
        Step(
            session=0,
            op=Pipeline(
                (
                    Exists("/", True),
                    SetData("/a", b"", 0),
                    SetData("/", b"", -1),
                    SetData("/", None, -1),
                    Sync("/"),
                )
            ),
        ),
    ]
    _assert_same(zookeeper, zetcd, steps)
