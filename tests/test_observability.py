"""Four-letter words (compared with real ZooKeeper's formats) and the Prometheus endpoint."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import socket
import struct
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import cast

import pytest
from kazoo.client import KazooClient

from tests.differential import Diff
from tests.rawclient import RawClient
from tests.servers import (
    EtcdServer,
    ZooKeeperServer,
    four_letter_word,
    free_port,
    freeze,
)
from tests.test_javaorder import colliding_names
from tests.zetcd_server import ZetcdServer
from zetcd.emulation.javaconcurrent import ConcurrentTable
from zetcd.emulation.javaorder import java_long_hash
from zetcd.emulation.javatree import long_before
from zetcd.proto import encode_connect_request
from zetcd.proto.constants import OpCode
from zetcd.proto.framing import frame
from zetcd.proto.records import (
    ACL,
    AddWatchRequest,
    AuthPacket,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetAllChildrenNumberRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    RequestHeader,
    SetACLRequest,
    SetDataRequest,
)

OPEN_ACL = (ACL(31, Id("world", "anyone")),)


def _shape(text: str) -> list[str]:
    """Each line with its values replaced: what a monitoring script parses."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"0x[0-9a-f]+", "HEX", line)
        line = re.sub(r"/[0-9.]+:\d+", "/ADDR", line)
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        out.append(line)
    return out


def _cons_fields(text: str) -> set[tuple[str, ...]]:
    return {tuple(re.findall(r"(\w+)=", line)) for line in text.splitlines() if "sid=" in line}


def _keys(text: str, sep: str) -> list[str]:
    return [line.split(sep)[0] for line in text.splitlines()]


def _words(address: str) -> dict[str, str]:
    host, port = address.rsplit(":", 1)
    root = f"/4lw-{uuid.uuid4().hex[:8]}"
    zk = KazooClient(address, timeout=10)
    zk.start(timeout=15)
    try:
        zk.create(root)
        zk.create(root + "/e", ephemeral=True)
        zk.exists(root + "/watched", watch=lambda e: None)
        zk.get(root, watch=lambda e: None)
        zk.get_children(root, watch=lambda e: None)
        words = {w: four_letter_word(host, int(port), w) for w in
                 ("ruok", "isro", "srvr", "stat", "cons", "wchs", "wchc", "wchp", "conf", "envi")}  # fmt: skip
        words["mntr"] = four_letter_word(host, int(port), "mntr")
        words["dump"] = four_letter_word(host, int(port), "dump")
        words["session"] = f"0x{zk.client_id[0]:x}"
        words["root"] = root
    finally:
        zk.stop()
        zk.close()
    return words


def test_four_letter_word_formats(diff: Diff) -> None:
    zk = _words(diff.zookeeper)
    ours = _words(diff.zetcd)
    for w in ("ruok", "isro"):
        assert ours[w] == zk[w]
    for w in ("srvr", "stat"):  # line 1 names the version: 3.8.0-<build>
        assert _shape(ours[w])[1:] == _shape(zk[w])[1:], w
    assert ours["srvr"].startswith("Zookeeper version: 3.8.0-")
    for words in (zk, ours):  # whole milliseconds, so the average lies between the bounds
        low, avg, high = re.findall(r"Latency min/avg/max: (\S+)/(\S+)/(\S+)", words["srvr"])[0]
        assert low.isdigit() and high.isdigit() and int(low) <= float(avg) <= int(high), words
    # cons: one line per connection, ZooKeeper's fields in ZooKeeper's order
    assert _cons_fields(ours["cons"]) and _cons_fields(ours["cons"]) == _cons_fields(zk["cons"])
    # watches: data-table watches only, per session and per path
    assert "Total watches:" in ours["wchs"]
    for w in ("wchc", "wchp"):
        mine = {line.strip() for line in ours[w].splitlines()} - {""}
        assert (
            ours["session"] in mine and f"{ours['root']}/watched" in mine and ours["root"] in mine
        )
    assert _keys(ours["conf"], "=") == _keys(zk["conf"], "=")
    assert ours["envi"].splitlines()[0] == "Environment:"
    assert ours["envi"].splitlines()[1].startswith("zookeeper.version=3.8.0-")
    assert _keys(ours["mntr"], "\t")[:8] == _keys(zk["mntr"], "\t")[:8]
    assert f"{ours['root']}/e" in ours["dump"] and "Sessions with Ephemerals (" in ours["dump"]


def _cons_brackets(address: str) -> dict[str, str]:
    host, port = address.rsplit(":", 1)
    idle = socket.create_connection((host, int(port)))  # sends nothing
    partial = socket.create_connection((host, int(port)))
    partial.sendall(frame(encode_connect_request(ConnectRequest(0, 0, 10000, 0, bytes(16))))[:30])
    full = RawClient(address)
    full.connect()
    socks = {"idle": idle, "partial connect": partial, "session": full.sock}
    ports = {kind: str(sock.getsockname()[1]) for kind, sock in socks.items()}
    time.sleep(0.3)
    try:
        cons = four_letter_word(host, int(port), "cons")
    finally:
        for sock in socks.values():
            sock.close()
    shown = dict(re.findall(r"/127\.0\.0\.1:(\d+)\[(\d)\]", cons))
    return {kind: shown[local] for kind, local in ports.items()}


def test_cons_shows_the_interest_ops_of_connections_with_and_without_a_session(
    diff: Diff,
) -> None:
    """The bracket after a client's address is its selection key's interest ops: OP_READ (1)
    for every connection being read, whether it has a session yet or not."""
    expected = _cons_brackets(diff.zookeeper)
    assert _cons_brackets(diff.zetcd) == expected
    assert expected == {"idle": "1", "partial connect": "1", "session": "1"}


def test_whitelist_defaults_to_srvr_like_zookeeper(etcd: EtcdServer) -> None:
    zk = ZooKeeperServer(config={"4lw.commands.whitelist": "srvr"})
    zk._probe = lambda: _srvr_ok(zk)  # type: ignore[method-assign]
    zetcd = ZetcdServer(etcd.endpoint, extra_args=("--4lw-whitelist", "srvr"))
    zetcd._probe = lambda: _srvr_ok(zetcd)  # type: ignore[method-assign]
    with zk, zetcd:  # zetcd's --4lw-whitelist srvr comes last, so it wins
        for server in (zk, zetcd):
            assert four_letter_word(server.host, server.port, "srvr").startswith("Zookeeper")
            assert four_letter_word(server.host, server.port, "ruok") == (
                "ruok is not executed because it is not in the whitelist.\n"
            )
            assert four_letter_word(server.host, server.port, "abcd") == ""


@pytest.mark.parametrize("whitelist", ["ruok", "ruok,*", "*,ruok", "abcd,ruok,,"])
def test_whitelists_read_as_zookeeper_reads_them(etcd: EtcdServer, whitelist: str) -> None:
    """srvr is always answered, whatever the whitelist; a * anywhere in it answers every word."""
    zk = ZooKeeperServer(config={"4lw.commands.whitelist": whitelist})
    zetcd = ZetcdServer(etcd.endpoint, extra_args=("--4lw-whitelist", whitelist))
    with zk, zetcd:
        answers = []
        for server in (zk, zetcd):
            words = ("srvr", "ruok", "stat", "isro", "gtmk")
            got = [four_letter_word(server.host, server.port, w) for w in words]
            answers.append([(w, a[:8]) for w, a in zip(words, got, strict=True)])
        assert answers[1] == answers[0]


def _packets(server: ZetcdServer | ZooKeeperServer, word: str = "srvr") -> tuple[int, int]:
    text = four_letter_word(server.host, server.port, word)
    received, sent = re.findall(r"(?:Received|Sent): (\d+)", text)
    return int(received), int(sent)


def _packet_deltas(server: ZetcdServer | ZooKeeperServer) -> list[tuple[int, int]]:
    """How srvr's and stat's Received and Sent move: over a srvr alone, a session's connect, one
    request and the srvr after, its closeSession and a srvr, a ruok and a stat."""
    marks = [_packets(server), _packets(server)]
    c = RawClient(server.address)
    c.connect()
    c.call(OpCode.EXISTS, ExistsRequest("/", False))
    # ZooKeeper counts a reply sent once its write completes, which the client can see first:
    # a srvr sent at once may find the exists' reply not yet counted (seen once in CI)
    time.sleep(0.2)
    marks.append(_packets(server))
    c.call(OpCode.CLOSE_SESSION)
    c.close()
    time.sleep(0.2)
    marks.append(_packets(server))
    four_letter_word(server.host, server.port, "ruok")
    marks.append(_packets(server, "stat"))
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(marks)]


def test_srvr_counts_packets_as_zookeeper_does(etcd: EtcdServer) -> None:
    """A four-letter word is a packet received, counted before its answer, and one sent, after;
    a connect is one each way (servers of the test's own: no other client's pings)."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        expected = _packet_deltas(zk)
        assert expected == [(1, 1), (3, 3), (2, 2), (2, 2)]
        assert _packet_deltas(zetcd) == expected


def _long_answer_packets(server: ZetcdServer | ZooKeeperServer) -> list[int]:
    """srvr's Sent over a wchc and a wchp whose answers run over 8,192 chars (300 watches)."""
    c = RawClient(server.address)
    c.connect()
    root = f"/long-{uuid.uuid4().hex[:8]}"
    for k in range(300):
        c.call(OpCode.EXISTS, ExistsRequest(f"{root}/a-watched-path-of-some-length-{k:04d}", True))
    out = []
    for word in ("wchc", "wchp", "ruok"):
        before = _packets(server)[1]
        four_letter_word(server.host, server.port, word)
        out.append(_packets(server)[1] - before - 1)  # less srvr's own answer
    c.close()
    return out


def test_a_long_answer_counts_a_packet_per_8192_chars(etcd: EtcdServer) -> None:
    """ZooKeeper writes a four-letter word's answer through a BufferedWriter of 8,192 chars,
    and counts each buffer as a packet sent."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        expected = _long_answer_packets(zk)
        assert expected[0] > 1 and expected[-1] == 1
        assert _long_answer_packets(zetcd) == expected


def _connections(server: ZetcdServer | ZooKeeperServer) -> tuple[int, str]:
    """srvr's Connections, and wchs (the connections holding data watches)."""
    text = four_letter_word(server.host, server.port, "srvr")
    found = re.search(r"^Connections: (\d+)$", text, re.MULTILINE)
    assert found is not None, text
    return int(found[1]), four_letter_word(server.host, server.port, "wchs").splitlines()[0]


def _connections_as_clients_leave(
    server: ZetcdServer | ZooKeeperServer, etcd_pid: int | None = None
) -> list[tuple[int, str]]:
    """srvr's Connections and wchs with a session connected and watching (the srvr's own
    connection counts too), at once after its closeSession is answered, and after a client
    that watches closed its socket with a write in flight (held in flight on zetcd by stopping
    its etcd meanwhile)."""
    counts = []
    c = RawClient(server.address)
    c.connect()
    c.call(OpCode.EXISTS, ExistsRequest("/", True))
    counts.append(_connections(server))
    c.call(OpCode.CLOSE_SESSION)
    time.sleep(0.2)  # ZooKeeper closes the connection just after sending the reply
    counts.append(_connections(server))
    c.close()
    c = RawClient(server.address)
    c.connect()
    c.call(OpCode.EXISTS, ExistsRequest("/", True))
    if etcd_pid is not None:
        freeze(etcd_pid)
    try:
        path = f"/gone-{uuid.uuid4().hex[:8]}"
        c.request(OpCode.CREATE, CreateRequest(path, b"", (ACL(31, Id("world", "anyone")),), 0))
        time.sleep(0.1)  # the request read before the close
        c.close()
        time.sleep(0.3)
        counts.append(_connections(server))
    finally:
        if etcd_pid is not None:
            os.kill(etcd_pid, signal.SIGCONT)
    return counts


def test_a_closed_connection_leaves_srvr_and_wchs_at_once(etcd: EtcdServer) -> None:
    """A connection closed by either side stops counting at once, its watches with it, as
    ZooKeeper drops it from its connection set and its watches from the watch table when it
    closes it, before the requests in flight are answered."""
    with ZooKeeperServer() as zk, EtcdServer() as held, ZetcdServer(held.endpoint) as zetcd:
        expected = _connections_as_clients_leave(zk)
        watching, none = "1 connections watching 1 paths", "0 connections watching 0 paths"
        assert expected == [(2, watching), (1, none), (1, none)]
        assert _connections_as_clients_leave(zetcd, held.pid) == expected


def _in_flight_counts(
    server: ZetcdServer | ZooKeeperServer, hold: Callable[[], None], release: Callable[[], None]
) -> list[tuple[str, dict[str, str]]]:
    """srvr's Received, Sent and Outstanding and the session's `cons` counters with four
    requests in flight behind a write (`hold` keeps writes from finishing), and another
    client's connect for a new session: read, before and
    after a `crst`, and once answered. (Not mntr: ZooKeeper 3.8's is long enough to count
    several packets sent, zetcd's one.)"""

    def counts(label: str) -> tuple[str, dict[str, str]]:
        text = four_letter_word(server.host, server.port, "srvr")
        fields = dict(re.findall(r"^(Received|Sent|Outstanding): (\d+)$", text, re.MULTILINE))
        line = _cons_line(server.address, sid)
        fields |= {key: line[key] for key in ("queued", "recved", "sent")}
        return label, fields

    c = RawClient(server.address, timeout=20)
    sid = c.connect(timeout=30000).sessionId
    root = f"/held-{uuid.uuid4().hex[:8]}"
    c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN_ACL, 0))
    out = [counts("at rest")]
    hold()
    try:
        c.request(OpCode.CREATE, CreateRequest(f"{root}/a", b"", OPEN_ACL, 0))
        c.request(OpCode.EXISTS, ExistsRequest("/", False))  # reads wait behind the write
        c.request(OpCode.PING, xid=-2)  # a negative xid: never queued
        c.request(OpCode.GET_DATA, GetDataRequest(root, False))
        newcomer = RawClient(server.address, timeout=20)  # a session's creation held too
        newcomer.send_raw(newcomer.proto.send_connect(ConnectRequest(0, 0, 30000, 0, bytes(16))))
        time.sleep(0.3)
        out.append(counts("four in flight"))
        four_letter_word(server.host, server.port, "crst")
        out.append(counts("after crst"))
    finally:
        release()
    assert [c.reply().header.err for _ in range(4)] == [0, 0, 0, 0]
    assert newcomer.next().sessionId != 0
    time.sleep(0.2)  # ZooKeeper counts a reply sent once its write completes
    out.append(counts("answered"))
    newcomer.close()
    c.close()
    # srvr's totals from the first: the servers' start-up probes differ
    base = {key: int(out[0][1][key]) for key in ("Received", "Sent")}
    for _, fields in out:
        fields |= {key: str(int(fields[key]) - start) for key, start in base.items()}
    return out


def test_requests_in_flight_count_as_zookeeper_counts_them() -> None:
    """A request counts as received (srvr's Received, `cons`' recved) and, with a positive xid,
    queued (`cons`' queued: ServerCnxn's outstanding count) as it is read, and as sent when
    answered; srvr's Outstanding (mntr's zk_outstanding_requests) counts every request read
    and not yet answered (requestsInProcess: the ping too). `crst` resets received and sent,
    not queued. ZooKeeper's writes are held by its flush delay (the sync thread waits up to a
    third of it for more requests before it writes the log), zetcd's by stopping its etcd."""
    flush = ["-Dzookeeper.flushDelay=9000", "-Dzookeeper.maxWriteQueuePollTime=3000"]
    with (
        ZooKeeperServer(jvm_opts=flush) as zk,
        EtcdServer() as held,
        ZetcdServer(held.endpoint) as zetcd,
    ):
        expected = _in_flight_counts(zk, lambda: None, lambda: None)
        # Outstanding: the four requests and the session's creation
        assert expected[1][1]["queued"] == "3" and expected[1][1]["Outstanding"] == "5"
        assert expected[-1][1]["queued"] == "0"
        actual = _in_flight_counts(
            zetcd, lambda: freeze(held.pid), lambda: os.kill(held.pid, signal.SIGCONT)
        )
        assert actual == expected


def _wchc_blocks(text: str) -> frozenset[str]:
    """wchc's answer with its sessions named S1, S2...: its blocks, as a set (it lists the
    sessions in Java identity-hash order, which differs run to run)."""
    return frozenset(b.rstrip("\n") for b in re.split(r"\n(?=S)", text))


def _watch_listings(server: ZetcdServer | ZooKeeperServer) -> list[tuple[object, ...]]:
    """wchc, wchp and wchs through a session's data watches set, all fired, set again, and a
    second session's, with session ids named by the order the sessions were made. wchc lists
    sessions in Java identity-hash order, so its blocks are compared as a set."""
    host, port = server.address.rsplit(":", 1)
    names: dict[str, str] = {}

    def word(w: str) -> str:
        text = four_letter_word(host, int(port), w)
        return re.sub(r"0x[0-9a-f]+", lambda m: names.get(m[0], "?"), text)

    def listings() -> tuple[object, ...]:
        blocks = _wchc_blocks(word("wchc"))
        return blocks, word("wchp"), word("wchs")

    root = "/wch"  # the same paths on both servers: their order follows their hash codes
    nodes = [f"{root}/{name}" for name in ("q", "b", "zz", "aa", "n7", "x", "c1", "c2", "m")]
    nodes += [f"{root}/k{i}" for i in range(7)]
    a = KazooClient(server.address, timeout=10)
    b = KazooClient(server.address, timeout=10)
    a.start(timeout=15)
    b.start(timeout=15)
    try:
        names[f"0x{a.client_id[0]:x}"] = "S1"
        names[f"0x{b.client_id[0]:x}"] = "S2"
        for path in nodes:
            a.ensure_path(path)
        seen = []
        for path in nodes[:11]:  # within 16 buckets (12 entries)
            a.get(path, watch=lambda e: None)
        a.exists(f"{root}/absent", watch=lambda e: None)
        seen.append(listings())
        for path in nodes[11:]:  # past 12: both tables grow to 32 buckets
            a.get(path, watch=lambda e: None)
        seen.append(listings())
        for path in nodes:
            a.set(path, b"fired")
        a.create(f"{root}/absent")
        seen.append(listings())  # S1 listed without paths, and counted by wchs
        for path in (nodes[3], nodes[0], nodes[12]):
            a.get(path, watch=lambda e: None)
        b.get(nodes[5], watch=lambda e: None)  # paths of its own: the watchers of a path
        b.get(nodes[1], watch=lambda e: None)  # come in their identity hashes' order
        seen.append(listings())
        b.stop()
        time.sleep(0.2)  # ZooKeeper closes the connection just after closeSession's reply
        seen.append(listings())  # a closed connection's watches are gone
        return seen
    finally:
        for client in (a, b):
            client.stop()
            client.close()


def test_watch_listings_in_zookeepers_order(etcd: EtcdServer) -> None:
    """wchc and wchp list paths in the order of ZooKeeper's HashSet and HashMap (their tables
    grown to the most they held), and a session whose watches all fired stays listed."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        expected = _watch_listings(zk)
        assert expected[2][0] == {"S1"} and expected[2][2].startswith("1 connections")
        assert _watch_listings(zetcd) == expected


CLASSIC_MNTR = (  # ZooKeeper 3.4's mntr keys (standalone), which monitoring tools read
    "zk_version", "zk_avg_latency", "zk_max_latency", "zk_min_latency", "zk_packets_received",
    "zk_packets_sent", "zk_num_alive_connections", "zk_outstanding_requests", "zk_server_state",
    "zk_znode_count", "zk_watch_count", "zk_ephemerals_count", "zk_approximate_data_size",
    "zk_open_file_descriptor_count", "zk_max_file_descriptor_count",
)  # fmt: skip


def _crowded_watch_listings(
    server: ZetcdServer | ZooKeeperServer,
) -> list[tuple[frozenset[str], str]]:
    """wchc and wchp while two sessions' exists watches on paths that crowd Java hash buckets
    (nine and more a bucket, each path watched by one session) are set, then half of the
    first session's fired, then after that session closed (its paths leave the table in the
    order of its own set)."""
    host, port = server.address.rsplit(":", 1)
    a, b = RawClient(server.address), RawClient(server.address)
    names = {f"0x{c.connect().sessionId:x}": label for c, label in ((a, "S1"), (b, "S2"))}

    def listing() -> tuple[frozenset[str], str]:
        words = [four_letter_word(host, int(port), w) for w in ("wchc", "wchp")]
        for sid, label in names.items():
            words = [text.replace(sid, label) for text in words]
        return _wchc_blocks(words[0]), words[1]

    root = "/crowd"
    a.call(OpCode.CREATE, CreateRequest(root, b"", OPEN_ACL, 0))
    paths = colliding_names(random.Random(21), root + "/")[:90]
    random.Random(22).shuffle(paths)
    out = []
    for k, path in enumerate(paths):
        (a if k < 60 else b).call(OpCode.EXISTS, ExistsRequest(path, True))
        if k in (10, 40, 89):
            out.append(listing())
    for k, path in enumerate(paths[:60:2]):  # NodeCreated fires the watch: it leaves both tables
        a.call(OpCode.CREATE, CreateRequest(path, b"", OPEN_ACL, 0))
        if k in (5, 29):
            out.append(listing())
    a.call(OpCode.CLOSE_SESSION)
    a.close()
    time.sleep(0.2)  # ZooKeeper closes the connection just after closeSession's reply
    out.append(listing())
    b.close()
    return out


def test_watch_listings_of_crowded_java_buckets(etcd: EtcdServer) -> None:
    """wchc's per-session HashSet and wchp's HashMap of paths do as Java's do when a bucket
    gets a ninth name: a small table doubles early, a bigger one's bucket becomes a tree
    (listed root first), and removals turn it back into a list (javahashset.py)."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        expected = _crowded_watch_listings(zk)
        assert _crowded_watch_listings(zetcd) == expected


def _mntr(server: ZetcdServer | ZooKeeperServer) -> dict[str, str]:
    text = four_letter_word(server.host, server.port, "mntr")
    return dict(line.split("\t", 1) for line in text.splitlines())


def _mntr_counts(server: ZetcdServer | ZooKeeperServer) -> list[tuple[str, str]]:
    """mntr's watch count and approximate data size through watches of every kind and
    writes of non-ASCII paths and data, the root's data among them."""
    seen = []

    def look() -> None:
        values = _mntr(server)
        seen.append((values["zk_watch_count"], values["zk_approximate_data_size"]))

    open_acl = (ACL(31, Id("world", "anyone")),)
    c = RawClient(server.address)
    c.connect()
    look()
    for request in (
        (OpCode.ADD_WATCH, AddWatchRequest("/", 1)),  # persistent recursive
        (OpCode.ADD_WATCH, AddWatchRequest("/zookeeper", 0)),  # persistent
        (OpCode.GET_CHILDREN, GetChildrenRequest("/zookeeper", True)),
        (OpCode.EXISTS, ExistsRequest("/zookeeper", True)),
        (OpCode.CREATE, CreateRequest("/sz", "é€".encode(), open_acl, 0)),
        (OpCode.CREATE, CreateRequest("/sz/é€中", b"12", open_acl, 0)),
        (OpCode.SET_DATA, SetDataRequest("/", b"rootdata", -1)),
        (OpCode.SET_DATA, SetDataRequest("/sz", b"", -1)),
        (OpCode.DELETE, DeleteRequest("/sz/é€中", -1)),
    ):
        assert c.call(*request).header.err == 0, request
        look()
    c.close()
    time.sleep(0.2)
    look()
    return seen


def test_mntr_counts_as_zookeeper_does(etcd: EtcdServer) -> None:
    """mntr has every key ZooKeeper 3.4's had, in 3.8's order, its watch count takes both
    tables (a persistent watch counts twice), and its approximate data size adds each node's
    path length (in UTF-16 units) and data length (servers of the test's own)."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        theirs, ours = list(_mntr(zk)), list(_mntr(zetcd))
        assert set(CLASSIC_MNTR) <= set(ours) and set(CLASSIC_MNTR) <= set(theirs)
        assert ours == [key for key in theirs if key in ours]
        expected = _mntr_counts(zk)
        assert expected[0] == ("0", "44") and expected[2][0] == "4" and expected[-1][0] == "0"
        assert _mntr_counts(zetcd) == expected
        for server in (zk, zetcd):
            values = _mntr(server)
            fds = int(values["zk_open_file_descriptor_count"])
            assert 0 < fds < int(values["zk_max_file_descriptor_count"])


def _trace_masks(server: ZetcdServer | ZooKeeperServer) -> list[str]:
    def word(w: str, mask: int | None = None) -> str:
        payload = b"" if mask is None else struct.pack(">q", mask)
        return four_letter_word(server.host, server.port, w, payload=payload)

    def late_mask(first: bytes, rest: bytes) -> str:
        """stmk with its mask sent after a pause (or never all of it): ZooKeeper reads the
        mask once, right after the word, and closes without an answer if it is not all there."""
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(first)
            time.sleep(0.3)
            with contextlib.suppress(OSError):  # the server may have closed already
                sock.sendall(rest)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    mask = struct.pack(">q", 7)
    return [
        *(word("gtmk"), word("stmk", 5), word("gtmk"), word("stmk", -1), word("gtmk")),
        *(late_mask(b"stmk", mask), late_mask(b"stmk" + mask[:3], b""), word("gtmk")),
    ]


def test_trace_mask_words_as_zookeeper(etcd: EtcdServer) -> None:
    """gtmk and stmk: ZooTrace's level, 306 at start, printed without a newline (servers of
    the test's own: the level is server-wide)."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        expected = _trace_masks(zk)
        assert expected == ["306", "5", "5", "-1", "-1", "", "", "-1"]
        assert _trace_masks(zetcd) == expected


_BUCKET = re.compile(r"^(\d+) expire at (\w{3} \w{3} \d\d \d\d:\d\d:\d\d \w+ \d{4}):$")


def _expiry_queue(lines: list[str], names: dict[str, str], now: float) -> list[object]:
    """One queue of dump (its header line first): each bucket as (when, from now, in whole
    seconds; its elements named), checked for consistency with the header's counts."""
    found = re.fullmatch(r"\w+ Sets \((\d+)\)/\((\d+)\):", lines[0])
    assert found is not None, lines
    buckets: list[tuple[float, list[str]]] = []
    for line in lines[1:]:
        if line.startswith("\t"):
            buckets[-1][1].append(names.get(line[1:], line[1:]))
            continue
        head = _BUCKET.match(line)
        assert head is not None, line
        when = time.mktime(time.strptime(head[2].replace(" UTC ", " "), "%a %b %d %H:%M:%S %Y"))
        buckets.append((when - now, []))
        assert int(head[1]) >= 0
    assert len(buckets) == int(found[1]) and sum(len(b) for _, b in buckets) == int(found[2])
    assert [when for when, _ in buckets] == sorted(when for when, _ in buckets)
    return [(when, sorted(members)) for when, members in buckets]


def _dump(server: ZetcdServer | ZooKeeperServer, names: dict[str, str]) -> dict[str, object]:
    """dump, its three parts apart; session ids and client addresses named by ``names``."""
    now = time.time()
    text = four_letter_word(server.host, server.port, "dump")
    for raw, name in names.items():
        text = text.replace(raw, name)
    sessions, rest = text.split("ephemeral nodes dump:\n")
    ephemerals, connections = rest.split("Connections dump:\n")
    head, *queue = sessions.splitlines()
    assert head == "SessionTracker dump:"
    return {
        "sessions": _expiry_queue(queue, {}, now),
        "ephemerals": ephemerals,
        "connections": _expiry_queue(connections.splitlines(), {}, now),
    }


def _at_tick_start() -> None:
    """Wait for the start of a 2 s tick of the clock ZooKeeper's expiry queues count on (Java's
    nanoTime: CLOCK_MONOTONIC, as time.monotonic here): requests sent within the next second
    all move a session to one bucket. Never the tick of the previous call."""
    time.sleep(0.35)
    while not 100 <= int(time.monotonic() * 1000) % 2000 <= 300:
        time.sleep(0.01)


def _dumps(server: ZetcdServer | ZooKeeperServer) -> list[dict[str, object]]:
    """dump through two sessions (10 s and 30 s), ephemerals made and one deleted, a request
    a tick later (the first bucket left empty), a closeSession another tick later."""
    _at_tick_start()
    open_acl = (ACL(31, Id("world", "anyone")),)
    names: dict[str, str] = {}
    clients = []
    for n, timeout in enumerate((10000, 30000), 1):
        c = RawClient(server.address)
        sid = c.connect(timeout=timeout).sessionId
        names[f"0x{sid:x}"] = f"S{n}"
        host, port = c.sock.getsockname()[:2]
        names[f"ip: /{host}:{port} sessionId: S{n}"] = f"C{n}"
        clients.append(c)
    c1, c2 = clients
    for path, owner in (("/eb", c1), ("/ea", c1), ("/e9", c1), ("/x", c2)):
        assert owner.call(OpCode.CREATE, CreateRequest(path, b"", open_acl, 1)).header.err == 0
    assert c2.call(OpCode.DELETE, DeleteRequest("/x", -1)).header.err == 0
    seen = [_dump(server, names)]
    _at_tick_start()  # S1 moves to a later bucket, its first one left empty
    assert c1.call(OpCode.EXISTS, ExistsRequest("/", False)).header.err == 0
    seen.append(_dump(server, names))
    _at_tick_start()
    c2.call(OpCode.CLOSE_SESSION)
    c2.close()
    time.sleep(0.2)  # ZooKeeper closes the connection just after closeSession's reply
    seen.append(_dump(server, names))
    c1.close()
    return seen


def _dump_shape(dumps: list[dict[str, object]]) -> list[object]:
    """What both servers must agree on: the sessions' buckets (their times only roughly: they
    were touched at other moments), the ephemerals exactly, the connections' elements (the
    10 s connections and the dump's own may share a bucket or not, by when the 10 s boundary
    fell)."""
    shape: list[object] = []
    for d in dumps:
        sessions = cast(list[tuple[float, list[str]]], d["sessions"])
        connections = cast(list[tuple[float, list[str]]], d["connections"])
        shape.append(
            (
                [(round(when / 10) * 10, members) for when, members in sessions],
                # sessions in the order of a ConcurrentHashMap of their ids: compared as a set
                frozenset(
                    block.rstrip("\n")
                    for block in re.split(r"\n(?=S\d:)", cast(str, d["ephemerals"]))
                ),
                sorted(
                    "4lw" if m.endswith("sessionId: 0x0") else m
                    for _, members in connections
                    for m in members
                ),
            )
        )
    return shape


def test_dump_lists_expiry_queues_as_zookeeper(etcd: EtcdServer) -> None:
    """dump: the session expiry queue (buckets a tick apart, an emptied bucket kept until its
    time), the ephemerals of every session that made one (an emptied set kept), and the
    connection expiry queue (buckets of 10 s, the dump's own connection in it)."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        theirs, ours = _dumps(zk), _dumps(zetcd)
        expected = _dump_shape(theirs)
        assert expected[0][0] == [(10, ["S1"]), (30, ["S2"])]
        assert expected[1][0] == [(10, []), (10, ["S1"]), (30, ["S2"])]
        # closeSession moved S2 (a request) before it left: two emptied buckets
        assert expected[2][0] == [(10, []), (10, ["S1"]), (30, []), (30, [])]
        assert expected[0][1] == {
            "Sessions with Ephemerals (2):",
            "S1:\n\t/e9\n\t/ea\n\t/eb",  # a HashSet's order
            "S2:",  # its one ephemeral deleted, its set stays
        }
        assert expected[0][2] == ["4lw", "C1", "C2"] and expected[2][2] == ["4lw", "C1"]
        assert _dump_shape(ours) == expected
        for dumps in (theirs, ours):  # buckets of 10 s, from the last read or write
            for d in dumps:
                for when, members in cast(list[tuple[float, list[str]]], d["connections"]):
                    assert 0 <= when <= 41, d
                    if "C2" in members:  # 30 s
                        assert when >= 25, d
                    elif members:  # 10 s
                        assert when <= 21, d


def _ephemeral_owners(server: ZetcdServer | ZooKeeperServer) -> tuple[list[int], list[int]]:
    """Fourteen sessions made in turn, each with an ephemeral (the map grows past 12), three
    closed: the order dump lists the sessions with ephemerals in, and the order a
    ConcurrentHashMap of their ids has (javaconcurrent.ConcurrentTable)."""
    open_acl = (ACL(31, Id("world", "anyone")),)
    clients, ids = [], []
    for n in range(14):
        c = RawClient(server.address)
        ids.append(c.connect().sessionId)
        assert c.call(OpCode.CREATE, CreateRequest(f"/o{n}", b"", open_acl, 1)).header.err == 0
        clients.append(c)
    for c in clients[3:6]:
        c.call(OpCode.CLOSE_SESSION)
    text = four_letter_word(server.host, server.port, "dump")
    section = text.split("ephemeral nodes dump:\n")[1].split("Connections dump:")[0]
    listed = [int(line[2:-1], 16) for line in section.splitlines() if line.startswith("0x")]
    model: ConcurrentTable[int] = ConcurrentTable(java_long_hash, long_before)
    for sid in ids:
        model.add(sid)
    for sid in ids[3:6]:
        model.discard(sid)
    for c in clients:
        c.close()
    return listed, list(model)


def test_dump_lists_sessions_in_a_concurrent_hash_maps_order(etcd: EtcdServer) -> None:
    """dump lists the sessions with ephemerals in the order of ZooKeeper's ConcurrentHashMap
    of them: checked on ZooKeeper's own session ids, then on zetcd's."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        for server in (zk, zetcd):
            listed, model = _ephemeral_owners(server)
            assert len(listed) == 11 and listed == model, server


def _srvr_ok(server: ZetcdServer | ZooKeeperServer) -> bool:
    try:
        answer = four_letter_word(server.host, server.port, "srvr", timeout=1)
    except OSError:
        return False
    return answer.startswith("Zookeeper version") and "not currently serving" not in answer


def test_prometheus_metrics(etcd: EtcdServer) -> None:
    port = free_port()
    with ZetcdServer(etcd.endpoint, extra_args=("--metrics-addr", f"127.0.0.1:{port}")) as zetcd:
        zk = KazooClient(zetcd.address, timeout=10)
        zk.start(timeout=15)
        zk.create("/m", b"x")
        zk.get("/m", watch=lambda e: None)
        zk.exists("/missing")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        zk.stop()
        zk.close()
    assert 'zetcd_requests_total{op="create",result="ok"} 1.0' in text
    assert 'zetcd_requests_total{op="create_session",result="ok"} 1.0' in text  # its connect
    assert 'zetcd_requests_total{op="exists",result="no_node"} 1.0' in text
    assert 'zetcd_request_duration_seconds_count{op="get_data"} 1.0' in text
    assert re.search(r'zetcd_etcd_requests_total\{call="Txn",result="ok"\} [1-9]', text)
    assert 'zetcd_watches{table="data"} 1.0' in text
    assert "zetcd_sessions 1.0" in text
    assert re.search(r"zetcd_znodes [5-9]\.0", text)
    assert "zetcd_mirror_lag_seconds_count" in text


def _cons_line(address: str, session_id: int) -> dict[str, str]:
    """The session's `cons` fields, with what differs between two servers by nature (the
    established time, zxid values, latencies other than the minimum) reduced."""
    host, port = address.rsplit(":", 1)
    lines = [
        line
        for line in four_letter_word(host, int(port), "cons").splitlines()
        if f"sid=0x{session_id:x}," in line
    ]
    assert len(lines) == 1, lines
    fields = dict(re.findall(r"(\w+)=([^,)]*)", lines[0]))
    for gone in ("sid", "est", "llat", "avglat", "maxlat"):
        del fields[gone]
    if fields["lzxid"] not in ("0x0", "0xffffffffffffffff"):
        fields["lzxid"] = "a zxid"
    if fields["lresp"] != "0":  # the monotonic clock's ms, as Java's nanoTime on Linux
        lresp = int(fields["lresp"])
        fields["lresp"] = "now" if abs(lresp - time.monotonic() * 1000) < 60_000 else "?"
    return fields


def _cons_transcript(address: str) -> list[tuple[str, dict[str, str]]]:
    host, port = address.rsplit(":", 1)
    out = []
    a = RawClient(address)
    new = a.connect(timeout=10000)
    sid = new.sessionId
    out.append(("a new session", _cons_line(address, sid)))
    path = f"/cons-{uuid.uuid4().hex[:10]}"
    a.call(OpCode.EXISTS, ExistsRequest(path, True))
    a.call(OpCode.CREATE, CreateRequest(path, b"", (ACL(31, Id("world", "anyone")),), 1))
    out.append(("a reply, a notification", _cons_line(address, sid)))
    four_letter_word(host, int(port), "crst")
    out.append(("crst", _cons_line(address, sid)))
    a.close()
    b = RawClient(address)
    b.connect(timeout=10000, session_id=sid, passwd=new.passwd or b"")
    out.append(("resumed", _cons_line(address, sid)))
    for xid in (7, 8):
        b.send_raw(frame(struct.pack(">iii", xid, OpCode.CREATE_SESSION, 30000)))
        b.raw_reply()
    out.append(("createSession twice", _cons_line(address, sid)))
    b.send_raw(frame(struct.pack(">ii", 9, OpCode.CREATE_SESSION) + b"\x00"))
    b.raw_reply()
    b.send_raw(b.proto.send_request(RequestHeader(-2, OpCode.PING), None))
    b.reply()
    out.append(("a short createSession, a ping", _cons_line(address, sid)))
    b.call(OpCode.CLOSE_SESSION)
    b.close()
    return out


def _last_ops(address: str) -> list[tuple[str, dict[str, str]]]:
    """lop, lcxid and lzxid after requests that fail or are answered by the network thread."""
    a = RawClient(address)
    new = a.connect(timeout=10000)
    path = f"/lop-{uuid.uuid4().hex[:10]}"
    a.call(OpCode.CREATE, CreateRequest(path, b"", (ACL(31, Id("world", "anyone")),), 0))
    out = []
    steps: list[tuple[str, int, object]] = [
        ("a failed create", OpCode.CREATE, CreateRequest(path, b"", OPEN_ACL, 0)),
        ("getAllChildrenNumber", OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path)),
        ("a digest auth", OpCode.AUTH, AuthPacket(0, "digest", b"u:p")),
        ("a failed setData", OpCode.SET_DATA, SetDataRequest(path, b"", 7)),
        ("a failed delete", OpCode.DELETE, DeleteRequest(path + "/none", -1)),
        ("a failed read", OpCode.GET_DATA, GetDataRequest(path + "/none", False)),
        ("a failed setACL", OpCode.SET_ACL, SetACLRequest(path, OPEN_ACL, 5)),
    ]
    for label, opcode, record in steps:
        if opcode == OpCode.AUTH:
            a.send_raw(a.proto.send_request(RequestHeader(-4, opcode), record))
            a.reply()
        else:
            a.call(opcode, record)
        fields = _cons_line(address, new.sessionId)
        out.append((label, {k: fields[k] for k in ("lop", "lcxid", "lzxid")}))
    a.call(OpCode.CLOSE_SESSION)
    a.close()
    return out


def test_cons_names_the_last_op_as_zookeeper_does(diff: Diff) -> None:
    """A write that fails is an error txn, whose op ZooKeeper never names (lop=NA); an auth
    packet, answered by its network thread, leaves lop, lcxid and lzxid as they were."""
    expected = _last_ops(diff.zookeeper)
    assert expected[0][1]["lop"] == "NA"
    assert _last_ops(diff.zetcd) == expected


def test_cons_counts_a_connection_as_zookeeper_does(diff: Diff) -> None:
    """`cons` per connection: the connect counted as a packet each way, a new session's creation
    as its first request (SESS, cxid 0), Java's defaults until `crst` (lop null, lcxid and
    lzxid 0, minlat 0) and its values after (NA, no lcxid, lzxid -1), a ping's xid not kept,
    and every createSession inside the session left queued. (crst resets every connection's
    counters: this test comes after the one comparing all connections' fields.)"""
    expected = _cons_transcript(diff.zookeeper)
    assert expected[0][1]["lop"] == "SESS" and expected[3][1]["lop"] == "null"
    assert _cons_transcript(diff.zetcd) == expected
