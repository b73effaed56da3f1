"""Quota bookkeeping (zetcd/emulation/quotas.py) beyond the differential scenarios of
test_diff_quota.py: the parsing and path rules against ZooKeeper 3.8.0's own classes
(tests/java/QuotaRules.java runs StatsTrack and PathTrie from zookeeper.jar), the requests where
ZooKeeper 3.8.0 stops instead of answering, quota state shared by two zetcds through etcd, and
the guards that keep counts exact when two zetcds write at once."""

from __future__ import annotations

import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from kazoo.client import KazooClient

from tests.backends import never_at_once, twin_backends
from tests.servers import ZOOKEEPER_JARS, EtcdServer
from tests.test_batcher import MOD, OPEN, _compares, _ctx
from tests.zetcd_server import ZetcdServer
from zetcd.emulation import plans
from zetcd.emulation.backend import EtcdBackend
from zetcd.emulation.quotas import components, format_stats, max_prefix, parse_stats, updated
from zetcd.etcd import EtcdClient
from zetcd.proto.constants import OpCode
from zetcd.proto.records import CreateRequest

SOURCE = Path(__file__).parent / "java" / "QuotaRules.java"


def run_quota_rules(lines: list[str]) -> list[str]:
    java = shutil.which("java")
    assert java is not None, "java is needed (openjdk-17-jdk-headless)"
    proc = subprocess.run(
        [java, "-XX:+UseSerialGC", "-cp", ":".join(ZOOKEEPER_JARS), str(SOURCE)],
        input="".join(line + "\n" for line in lines),
        capture_output=True, text=True, encoding="ascii", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answers = proc.stdout.split("\n")
    assert answers[-1] == "" and len(answers) == len(lines) + 1, proc.stderr
    return answers[:-1]


# ---------------------------------------------------------------------------- StatsTrack
PIECES = (
    "count", "bytes", "x", "countHardLimit", "=", "==", ",", ";", ",;", "1", "42", "-", "+",
    "-1", "9223372036854775807", "9223372036854775808", "\u0663", "\uff17", "\u00b2", " ",
    "é", "\U0001f600", "",
)  # fmt: skip
HANDPICKED = (
    b"",
    b"count=0,bytes=0",
    b"count=1,bytes=2;x=5,a=1",
    b"count=1,bytes=2=;countHardLimit=3;byteHardLimit=4",
    b"count=",
    b"count==4",
    b"=5",
    b";,",
    b",count=1",
    b"count=1,",
    b"count",
    b"count=-9223372036854775808,bytes=9223372036854775807",
    b"count=1=2=3",
    b"count=\xff\xfe,bytes=1",
    b"k\xed\xa0\xbd=1",
)


def _stats_corpus() -> list[bytes]:
    rng = random.Random(20261205)
    out = list(HANDPICKED)
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 9)))
        raw = text.encode()
        if rng.random() < 0.05:
            cut = rng.randrange(len(raw) + 1)
            raw = raw[:cut] + bytes([rng.choice((0x80, 0xC3, 0xED, 0xFF))]) + raw[cut:]
        out.append(raw)
    return out


def test_stats_are_parsed_and_written_as_statstrack_does() -> None:
    corpus = _stats_corpus()
    answers = run_quota_rules(["S " + raw.hex() for raw in corpus])
    thrown = 0
    for raw, answer in zip(corpus, answers, strict=True):
        stats = parse_stats(raw)
        if answer == "!":
            thrown += 1
            assert stats is None, raw
            assert updated(raw, 1, -7) is None, raw
            continue
        first, after = (bytes.fromhex(h) for h in answer.split(" "))
        assert stats is not None, raw
        assert format_stats(stats) == first, raw
        assert updated(raw, 1, -7) == after, raw
    assert 100 < thrown < len(corpus) - 100  # both kinds well represented


# ---------------------------------------------------------------------------- PathTrie
SEGMENTS = ("a", "b", "ab", " ", "", "\t", " a", "a ", "é", "\x01", "q u")


def _random_path(rng: random.Random) -> str:
    parts = [rng.choice(SEGMENTS) for _ in range(rng.randint(0, 4))]
    return ("/" if rng.random() < 0.8 else "") + "/".join(parts)


def test_quotad_paths_are_found_as_pathtrie_finds_them() -> None:
    """addPath, deletePath and findMaxPrefix on random paths: ZooKeeper's trie against the set
    of component tuples zetcd keeps (its throws are where zetcd's hooks do nothing)."""
    rng = random.Random(5)
    lines: list[str] = []
    expected: list[str] = []
    quotas: set[tuple[str, ...]] = set()
    for i in range(4000):
        if i % 200 == 0:
            lines.append("R")
            expected.append("ok")
            quotas = set()
        path = _random_path(rng)
        op = rng.choice("AADFFF")
        lines.append(f"{op} {path.encode().hex()}")
        if op == "F":
            found = max_prefix(frozenset(quotas), path)
            expected.append((found or "/").encode().hex())
        elif path == "" or (op == "D" and not components(path)):
            expected.append("!")  # IllegalArgumentException; deletePath of the root: NPE
        else:
            if op == "A" and components(path):
                quotas.add(components(path))
            elif op == "D":
                quotas.discard(components(path))
            expected.append("ok")
    assert run_quota_rules(lines) == expected


# ---------------------------------------------------------------------------- zetcd only
@contextmanager
def _client(server: ZetcdServer) -> Iterator[KazooClient]:
    zk = KazooClient(hosts=server.address, timeout=10)
    zk.start(timeout=15)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


@pytest.fixture
def own_zetcd(etcd: EtcdServer) -> Iterator[ZetcdServer]:
    """A zetcd of this test's own (its /zookeeper/quota is not the shared one's, which the
    differential tests compare with ZooKeeper's)."""
    with ZetcdServer(etcd.endpoint) as server:
        yield server


def test_requests_that_stop_zookeeper_go_through_without_bookkeeping(
    own_zetcd: ZetcdServer,
) -> None:
    """Each of these makes ZooKeeper 3.8.0 throw while applying the transaction, and its server
    stops (checked by hand; docs/differences.md). zetcd applies the write and skips the quota
    step that threw; other quotas keep counting."""
    with _client(own_zetcd) as zk:
        _requests_that_stop_zookeeper(zk)


def _requests_that_stop_zookeeper(zk: KazooClient) -> None:
    base = f"/quota-crash-{uuid.uuid4().hex[:8]}"
    zk.create(base + "/q/a", b"12345", makepath=True)
    quota = "/zookeeper/quota" + base + "/q"
    zk.create(quota + "/zookeeper_limits", b"count=10", makepath=True)
    zk.create(quota + "/zookeeper_stats", b"")
    assert zk.get(quota + "/zookeeper_stats")[0] == b"count=2,bytes=5"
    # a limits node right under /zookeeper/quota: PathTrie.addPath("") throws
    zk.create("/zookeeper/quota/zookeeper_limits", b"count=1")
    # one under /zookeeper but shorter than /zookeeper/quota: trimQuotaPath throws on delete
    zk.create("/zookeeper/zookeeper_limits", b"")
    zk.delete("/zookeeper/zookeeper_limits")
    zk.delete("/zookeeper/quota/zookeeper_limits")
    zk.create(base + "/q/b", b"xy")
    assert zk.get(quota + "/zookeeper_stats")[0] == b"count=3,bytes=7"
    # stats StatsTrack cannot parse: the write goes through, the stats stay
    for garbage in (b"garbage", b"count=", b"count=x,bytes=1"):
        zk.set(quota + "/zookeeper_stats", garbage)
        zk.create(base + "/q/c", b"c")
        zk.delete(base + "/q/c")
        assert zk.get(quota + "/zookeeper_stats")[0] == garbage
        assert zk.exists(base + "/q/c") is None
    zk.set(quota + "/zookeeper_stats", b"count=0,bytes=0")
    zk.create(base + "/q/d", b"dd")
    assert zk.get(quota + "/zookeeper_stats")[0] == b"count=1,bytes=2"


def test_quotas_live_in_etcd_for_every_zetcd(etcd: EtcdServer, own_zetcd: ZetcdServer) -> None:
    """A quota set through one zetcd counts the writes another zetcd on the same etcd takes,
    one started after the quota was (it reads the quota's state from etcd)."""
    base = f"/quota-shared-{uuid.uuid4().hex[:8]}"
    quota = "/zookeeper/quota" + base
    with _client(own_zetcd) as zk:
        zk.create(base + "/a", b"abc", makepath=True)
        zk.create(quota + "/zookeeper_limits", b"count=10", makepath=True)
        zk.create(quota + "/zookeeper_stats", b"")
        with (
            ZetcdServer(etcd.endpoint, prefix=own_zetcd.prefix) as other,
            _client(other) as zk2,
        ):
            zk2.create(base + "/b", b"12345")
            zk2.set(base + "/a", b"")
            data, stat = zk2.get(quota + "/zookeeper_stats")
            assert data == b"count=3,bytes=5" and stat.version == 0
            zk.sync("/")
            assert zk.get(quota + "/zookeeper_stats") == (data, stat)
            zk.delete(base + "/b")
            zk2.sync("/")
            assert zk2.get(quota + "/zookeeper_stats")[0] == b"count=2,bytes=0"


# ---------------------------------------------------------------------------- two writers
def _create(path: str, data: bytes = b"") -> plans.Apply:
    return plans.write(_ctx(), OpCode.CREATE, CreateRequest(path, data, OPEN, 0))


def _stats(backend: EtcdBackend, path: str) -> bytes:
    return backend.mirror.tree.nodes[f"/zookeeper/quota{path}/zookeeper_stats"].data


async def _raced(
    twins: tuple[EtcdClient, EtcdBackend, EtcdClient, EtcdBackend],
    fence: bool,
    meanwhile: list[plans.Apply],
    write: plans.Apply,
) -> list[bytes]:
    """Zetcd A plans ``write``; before its first try reaches etcd, zetcd B commits the
    ``meanwhile`` writes. The transactions A sent, once ``write`` succeeded."""
    client_a, a, _, b = twins
    await b.mirror.catch_up()
    a.batcher.use_fence = fence
    sent: list[bytes] = []
    txn_encoded = client_a.txn_encoded

    async def first_b_then_etcd(request: bytes) -> object:
        sent.append(request)
        if len(sent) == 1:
            for other in meanwhile:
                _, err, _ = await b.batcher.submit(other)
                assert err == 0
        return await txn_encoded(request)

    client_a.txn_encoded = first_b_then_etcd  # type: ignore[method-assign]
    client_a.start_txn = never_at_once  # type: ignore[method-assign]
    _, err, _ = await a.batcher.submit(write)
    assert err == 0
    await a.mirror.catch_up()
    return sent


@pytest.mark.parametrize("fence", [True, False])
def test_a_write_planned_before_another_zetcds_quota_is_counted(
    etcd: EtcdServer, fence: bool
) -> None:
    """Zetcd A plans a create under /q while no quota exists; before it commits, zetcd B creates
    the quota (limits and stats, counting /q as it stands). A's commit must fail and be planned
    again, now under the quota: with per-key guards by the ``!quota`` key's compare, with the
    fence by B's transaction moving it."""

    async def main() -> None:
        async with twin_backends(etcd) as twins:
            a = twins[1]
            await a.batcher.submit(_create("/q", b"q"))
            await a.batcher.submit(_create("/zookeeper/quota/q"))
            quota = [
                _create("/zookeeper/quota/q/zookeeper_limits", b"count=9"),
                _create("/zookeeper/quota/q/zookeeper_stats"),
            ]
            sent = await _raced(twins, fence, quota, _create("/q/x", b"xyz"))
            assert len(sent) == 2
            # (per-key, the clock's time bound on the fence may fail it first: the ``!quota``
            # compare is what holds when both transactions have the same time)
            assert ((a.mirror.layout.quotas, MOD) in _compares(sent[0])) != fence
            assert _stats(a, "/q") == b"count=2,bytes=4"

    trio.run(main)


@pytest.mark.parametrize("fence", [True, False])
def test_a_quota_counted_before_another_zetcds_write_counts_it(
    etcd: EtcdServer, fence: bool
) -> None:
    """The other way round: zetcd A plans the stats node's creation (counting /q's subtree);
    before it commits, zetcd B creates /q/x, which no quota covers yet. A's commit must fail and
    count again: a transaction that creates a limits or stats node pins the fence."""

    async def main() -> None:
        async with twin_backends(etcd) as twins:
            a = twins[1]
            for path, data in (
                ("/q", b"q"),
                ("/zookeeper/quota/q", b""),
                ("/zookeeper/quota/q/zookeeper_limits", b"count=9"),
            ):
                await a.batcher.submit(_create(path, data))
            stats = _create("/zookeeper/quota/q/zookeeper_stats")
            sent = await _raced(twins, fence, [_create("/q/x", b"xyz")], stats)
            assert len(sent) == 2
            assert _stats(a, "/q") == b"count=2,bytes=4"

    trio.run(main)
