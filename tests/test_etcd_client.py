"""zetcd.etcd.EtcdClient against a real etcd (/usr/bin/etcd) started on loopback by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from pyetcd.etcdrpc import rpc_pb2

from tests.servers import freeze
from zetcd.etcd import (
    CompactedError,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    WatchBatch,
    compare_create,
    compare_mod,
    compare_value,
    compare_version,
    encode_guarded_txn,
    encode_txn,
    op_delete,
    op_put,
    op_range,
    prefix_end,
)
from zetcd.etcd._conn import parse_endpoints

ETCD_BINARY = "/usr/bin/etcd"
PUT, DELETE = 0, 1
TIMEOUT_CODES = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)


# -- a real etcd on loopback -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_etcd(
    tmp_path: Path,
    *,
    client_port: int | None = None,
    peer_port: int | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 15.0,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start etcd with its data in ``tmp_path/etcd``; return ("127.0.0.1:port", process) once
    ``/health`` answers. Restarting with the same tmp_path and ports resumes the same member.
    Ports left to it are picked free; a start that loses them to another process is retried."""
    for attempt in range(5):
        try:
            return _start_etcd_once(
                tmp_path, client_port or free_port(), peer_port or free_port(), extra_args, timeout
            )
        except _PortTaken:
            if (client_port and peer_port) or attempt == 4:
                raise
    raise AssertionError("unreachable")


class _PortTaken(RuntimeError):
    pass


def _start_etcd_once(
    tmp_path: Path, client_port: int, peer_port: int, extra_args: tuple[str, ...], timeout: float
) -> tuple[str, subprocess.Popen[bytes]]:
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    log_path = tmp_path / "etcd.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                ETCD_BINARY,
                "--name=zetcd-test",
                f"--data-dir={tmp_path / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=zetcd-test={peer_url}",
                "--logger=zap",
                "--log-level=warn",
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + timeout

    def lost_the_port() -> bool:
        with open(log_path, "rb") as log:
            log.seek(log_start)
            return b"address already in use" in log.read()

    while True:
        try:
            with urllib.request.urlopen(f"{client_url}/health", timeout=1) as reply:
                healthy = b'"health":"true"' in reply.read()
            # another etcd may have taken the port between free_port() and our bind, and be
            # the one answering: ours then logs the clash and exits
            if healthy and process.poll() is None and not lost_the_port():
                time.sleep(0.2)
                if process.poll() is None and not lost_the_port():
                    return f"127.0.0.1:{client_port}", process
        except OSError:
            pass
        if process.poll() is not None or lost_the_port() or time.monotonic() > deadline:
            stop_etcd(process)
            with open(log_path, "rb") as written:
                written.seek(log_start)
                output = written.read().decode(errors="replace")
            if "address already in use" in output:
                raise _PortTaken(output[-2000:])
            raise RuntimeError(f"etcd did not become healthy:\n{output[-2000:]}")
        time.sleep(0.05)


def stop_etcd(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Every watch with progress_notify gets a progress notification this often.
PROGRESS_ARGS = ("--experimental-watch-progress-notify-interval=300ms",)


@pytest.fixture(scope="module")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    endpoint, process = start_etcd(tmp_path_factory.mktemp("etcd"), extra_args=PROGRESS_ARGS)
    try:
        yield endpoint
    finally:
        stop_etcd(process)


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[str]:
    """A private etcd, for tests that compact or otherwise disturb the whole keyspace."""
    endpoint, process = start_etcd(tmp_path)
    try:
        yield endpoint
    finally:
        stop_etcd(process)


@contextlib.contextmanager
def blackhole() -> Iterator[str]:
    """A loopback port that accepts TCP connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    async def main() -> Any:
        with trio.fail_after(timeout):
            return await fn()

    return trio.run(main)


def etcd_sockets(endpoint: str) -> int:
    """Established TCP connections of this process to ``endpoint``'s port (from /proc)."""
    port = int(endpoint.rsplit(":", 1)[1])
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def open_calls(client: EtcdClient) -> int:
    """Calls (unary or streams) still open on the client's HTTP/2 connections."""
    conns = [ep._conn for ep in client._endpoints if ep._conn is not None]
    return sum(len(c._calls) for c in conns if c.error is None)


def assert_no_connections(endpoint: str) -> None:
    """Every connection of a closed client is closed: no stream or socket left behind."""
    assert etcd_sockets(endpoint) == 0


async def collect(watch: Any, until_revision: int) -> list[WatchBatch]:
    batches: list[WatchBatch] = []
    async for batch in watch:
        batches.append(batch)
        if batch.events and batch.events[-1].kv.mod_revision >= until_revision:
            return batches
    raise AssertionError("watch ended")


def events_of(batches: list[WatchBatch]) -> list[tuple[int, bytes, int, bytes]]:
    return [
        (ev.type, ev.kv.key, ev.kv.mod_revision, ev.kv.value) for b in batches for ev in b.events
    ]


# -- pure helpers --------------------------------------------------------------------------------
def test_prefix_end() -> None:
    assert prefix_end(b"/a") == b"/b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\xff") == b"\0"
    assert prefix_end(b"") == b"\0"


def test_builders() -> None:
    c = compare_mod(b"k", "=", 5)
    assert (c.key, c.mod_revision, c.result, c.target) == (b"k", 5, c.EQUAL, c.MOD)
    assert compare_create(b"k", "<", 3).target == c.CREATE
    assert compare_version(b"k", "!=", 2).result == c.NOT_EQUAL
    assert compare_value(b"k", ">", b"v").value == b"v"
    with pytest.raises(ValueError):
        compare_mod(b"k", "<=", 1)
    assert op_put(b"k", b"v", lease=7).request_put.lease == 7
    assert op_delete(b"a", b"b").request_delete_range.range_end == b"b"
    assert op_range(b"a").request_range.key == b"a"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=200),
            st.sampled_from(["mod", "create"]),
            st.integers(min_value=0, max_value=(1 << 63) - 1),
        ),
        max_size=8,
    ),
    st.lists(
        st.tuples(
            st.binary(max_size=300),
            st.one_of(st.none(), st.binary(max_size=300)),
            st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
        ),
        max_size=8,
    ),
)
def test_encode_txn_is_protobufs_serialization(
    compares: list[tuple[bytes, str, int]], ops: list[tuple[bytes, bytes | None, int]]
) -> None:
    expected = rpc_pb2.TxnRequest(
        compare=[
            compare_mod(k, "=", r) if t == "mod" else compare_create(k, "=", r)
            for k, t, r in compares
        ],
        success=[op_delete(k) if v is None else op_put(k, v, lease) for k, v, lease in ops],
    ).SerializeToString()
    assert encode_txn(compares, ops) == expected


_REVISIONS = st.one_of(
    st.sampled_from([0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000]),
    st.integers(min_value=0, max_value=(1 << 63) - 1),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=200), _REVISIONS, max_size=8),
    st.dictionaries(st.binary(max_size=200), _REVISIONS, max_size=8),
    st.lists(
        st.tuples(
            st.binary(max_size=300),
            st.one_of(st.none(), st.binary(max_size=20000)),
            st.integers(min_value=0, max_value=(1 << 63) - 1),
        ),
        max_size=8,
    ),
    st.one_of(st.none(), st.tuples(st.binary(max_size=200), st.binary(max_size=200))),
)
def test_encode_guarded_txn_is_protobufs_serialization(
    mods: dict[bytes, int],
    creates: dict[bytes, int],
    ops: list[tuple[bytes, bytes | None, int]],
    below: tuple[bytes, bytes] | None,
) -> None:
    """The batcher's encoder: mod compares, then create compares on keys not pinned by a mod
    compare, then the value compare, then the writes. Twice: the second time "absent" compares
    come from its cache."""
    expected = rpc_pb2.TxnRequest(
        compare=[compare_mod(k, "=", r) for k, r in mods.items()]
        + [compare_create(k, "=", r) for k, r in creates.items() if k not in mods]
        + ([] if below is None else [compare_value(below[0], "<", below[1])]),
        success=[op_delete(k) if v is None else op_put(k, v, lease) for k, v, lease in ops],
    ).SerializeToString()
    assert encode_guarded_txn(mods, creates, ops, below) == expected
    assert encode_guarded_txn(mods, creates, ops, below) == expected


def test_parse_endpoints() -> None:
    assert parse_endpoints("http://127.0.0.1:2379,127.0.0.2:2380") == [
        "127.0.0.1:2379",
        "127.0.0.2:2380",
    ]
    assert parse_endpoints(["localhost", "http://[::1]:1234/"]) == ["localhost:2379", "[::1]:1234"]
    assert parse_endpoints(["https://127.0.0.1:2379"]) == ["127.0.0.1:2379"]  # TLS: tls.py
    with pytest.raises(ValueError):
        parse_endpoints(["unix://127.0.0.1:2379"])
    with pytest.raises(ValueError):
        parse_endpoints([" , "])


# -- KV ----------------------------------------------------------------------------------------
def test_put_range_delete(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            p = b"/kv/"
            r1 = await client.put(p + b"a", b"1")
            r2 = await client.put(p + b"b", b"2")
            r3 = await client.put(p + b"a", b"11", prev_kv=True)
            assert r1.header.revision < r2.header.revision < r3.header.revision
            assert r3.prev_kv.value == b"1"

            one = await client.range(p + b"a")
            assert one.count == 1
            kv = one.kvs[0]
            assert (kv.key, kv.value, kv.version) == (p + b"a", b"11", 2)
            assert (kv.create_revision, kv.mod_revision) == (
                r1.header.revision,
                r3.header.revision,
            )
            assert one.header.revision >= r3.header.revision

            everything = await client.range(p, prefix_end(p))
            assert [kv.key for kv in everything.kvs] == [p + b"a", p + b"b"]
            keys = await client.range(p, prefix_end(p), keys_only=True, serializable=True)
            assert [kv.value for kv in keys.kvs] == [b"", b""]
            counted = await client.range(p, prefix_end(p), count_only=True)
            assert (counted.count, len(counted.kvs)) == (2, 0)
            limited = await client.range(p, prefix_end(p), limit=1)
            assert (len(limited.kvs), limited.more, limited.count) == (1, True, 2)
            old = await client.range(p + b"a", revision=r1.header.revision)
            assert old.kvs[0].value == b"1"
            assert (await client.range(p + b"missing")).kvs == []

            deleted = await client.delete_range(p, prefix_end(p), prev_kv=True)
            assert deleted.deleted == 2
            assert sorted(kv.value for kv in deleted.prev_kvs) == [b"11", b"2"]
            assert (await client.range(p, prefix_end(p))).count == 0
            assert (await client.delete_range(p + b"a")).deleted == 0

    run(main)


def test_txn_compares(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            k = b"/txn/k"
            # create-if-absent: succeeded branch, then failed branch
            created = await client.txn(
                [compare_create(k, "=", 0)], [op_put(k, b"v1")], [op_range(k)]
            )
            assert created.succeeded
            rev = created.header.revision
            again = await client.txn([compare_create(k, "=", 0)], [op_put(k, b"v2")], [op_range(k)])
            assert not again.succeeded
            assert again.responses[0].response_range.kvs[0].value == b"v1"
            assert again.header.revision == rev  # a failed txn with only reads writes nothing

            checks: list[tuple[Any, bool]] = [
                (compare_mod(k, "=", rev), True),
                (compare_mod(k, "!=", rev), False),
                (compare_mod(k, "<", rev + 1), True),
                (compare_mod(k, ">", rev), False),
                (compare_create(k, "=", rev), True),
                (compare_create(k, ">", 0), True),
                (compare_version(k, "=", 1), True),
                (compare_version(k, ">", 1), False),
                (compare_value(k, "=", b"v1"), True),
                (compare_value(k, "!=", b"v1"), False),
                (compare_value(k, "<", b"v2"), True),
                (compare_value(b"/txn/absent", "=", b""), False),
                (compare_version(b"/txn/absent", "=", 0), True),
            ]
            for cmp, expected in checks:
                result = await client.txn([cmp], [op_range(k)], [])
                assert result.succeeded is expected, cmp

            # several ops commit at one revision
            multi = await client.txn(
                [compare_mod(k, "=", rev), compare_version(k, "=", 1)],
                [op_put(k, b"v3"), op_put(b"/txn/k2", b"x"), op_delete(b"/txn/none")],
                [op_put(b"/txn/failed", b"x")],
            )
            assert multi.succeeded
            assert multi.header.revision == rev + 1
            assert multi.responses[2].response_delete_range.deleted == 0
            both = await client.range(b"/txn/", prefix_end(b"/txn/"))
            assert {kv.key: kv.mod_revision for kv in both.kvs} == {
                k: rev + 1,
                b"/txn/k2": rev + 1,
            }
            failed = await client.txn(
                [compare_mod(k, "=", rev)], [op_put(k, b"nope")], [op_put(b"/txn/failed", b"x")]
            )
            assert not failed.succeeded
            assert (await client.range(b"/txn/failed")).count == 1
            await client.txn([], [op_delete(b"/txn/", prefix_end(b"/txn/"))])
            assert (await client.range(b"/txn/", prefix_end(b"/txn/"))).count == 0

    run(main)


def test_current_revision_is_linearizable(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with (
            await EtcdClient.connect([etcd_endpoint]) as reader,
            await EtcdClient.connect([etcd_endpoint]) as writer,
        ):
            before = await reader.current_revision()
            for i in range(5):
                put = await writer.put(b"/rev/k", str(i).encode())
                now = await reader.current_revision()
                assert now >= put.header.revision > before
                before = now

    run(main)


# -- leases --------------------------------------------------------------------------------------
def test_leases(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            lease_id, ttl = await client.lease_grant(5, 0x5E55)
            assert (lease_id, ttl) == (0x5E55, 5)
            with pytest.raises(EtcdError) as exc:
                await client.lease_grant(5, 0x5E55)
            assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
            chosen, _ = await client.lease_grant(5)
            assert chosen not in (0, lease_id)

            # etcd 3.4 raises tiny TTLs to its minimum (2 s with default raft timing)
            tiny, tiny_ttl = await client.lease_grant(1)
            assert tiny_ttl >= 1

            await client.put(b"/lease/a", b"x", lease=lease_id)
            await client.put(b"/lease/b", b"x", lease=lease_id)
            assert (await client.range(b"/lease/a")).kvs[0].lease == lease_id

            await trio.sleep(1.2)
            remaining = await client.lease_ttl(lease_id)
            assert 0 < remaining < 5
            renewed = await client.keepalive([lease_id, chosen, lease_id, 0xDEAD])
            assert renewed == {lease_id: 5, chosen: 5, 0xDEAD: 0}
            assert await client.lease_ttl(lease_id) >= 4

            await client.lease_revoke(lease_id)
            assert await client.lease_ttl(lease_id) == -1
            assert (await client.range(b"/lease/", prefix_end(b"/lease/"))).count == 0
            await client.lease_revoke(lease_id)  # unknown lease: quiet
            assert (await client.keepalive([lease_id]))[lease_id] <= 0
            assert await client.keepalive([]) == {}
            for other in (chosen, tiny):
                await client.lease_revoke(other)

    run(main)


def test_lease_expiry_and_concurrent_keepalives(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            short, granted = await client.lease_grant(2)
            await client.put(b"/expire/k", b"x", lease=short)
            leases = [(await client.lease_grant(30))[0] for _ in range(8)]
            results: list[dict[int, int]] = []

            async def rounds(ids: list[int]) -> None:
                for _ in range(5):
                    results.append(await client.keepalive(ids))

            async with trio.open_nursery() as nursery:
                for i in range(4):
                    nursery.start_soon(rounds, leases[i * 2 : i * 2 + 2])
            assert len(results) == 20
            assert all(list(r.values()) == [30, 30] for r in results)

            with trio.fail_after(granted + 3):
                while (await client.range(b"/expire/k")).count:
                    await trio.sleep(0.1)
            assert await client.lease_ttl(short) == -1
            assert await client.keepalive([short]) == {short: 0}
            for lease in leases:
                await client.lease_revoke(lease)

    run(main)


# -- watch ---------------------------------------------------------------------------------------
def test_watch_events_in_order(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            p = b"/watch/order/"
            start = await client.current_revision() + 1
            async with client.watch(p, prefix_end(p), start_revision=start, prev_kv=True) as w:
                await client.put(p + b"a", b"1")
                await client.put(p + b"b", b"2")
                await client.put(b"/watch/elsewhere", b"x")  # outside the watched range
                await client.put(p + b"a", b"3")
                multi = await client.txn([], [op_put(p + b"c", b"4"), op_delete(p + b"b")])
                last = await client.delete_range(p + b"a")
                batches = await collect(w, last.header.revision)
            events = events_of(batches)
            assert [(t, k, v) for t, k, _, v in events] == [
                (PUT, p + b"a", b"1"),
                (PUT, p + b"b", b"2"),
                (PUT, p + b"a", b"3"),
                (PUT, p + b"c", b"4"),
                (DELETE, p + b"b", b""),
                (DELETE, p + b"a", b""),
            ]
            revisions = [r for _, _, r, _ in events]
            assert revisions == sorted(revisions)
            assert revisions[3] == revisions[4] == multi.header.revision
            assert revisions[0] == start
            prevs = [ev.prev_kv.value for b in batches for ev in b.events]
            assert prevs == [b"", b"", b"1", b"", b"2", b"3"]
            assert all(b.revision >= b.events[-1].kv.mod_revision for b in batches)
            assert not any(b.progress for b in batches)
        assert_no_connections(etcd_endpoint)

    run(main)


def test_watch_replays_history_and_from_now(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            p = b"/watch/history/"
            first = await client.put(p + b"x", b"1")
            for i in range(2, 6):
                last = await client.put(p + b"x", str(i).encode())
            async with client.watch(
                p, prefix_end(p), start_revision=first.header.revision
            ) as replay:
                batches = await collect(replay, last.header.revision)
            assert [v for *_, v in events_of(batches)] == [b"1", b"2", b"3", b"4", b"5"]

            # start_revision=0: only what happens after the watch was created
            async with client.watch(p, prefix_end(p), start_revision=0) as now:
                assert now.next_revision == last.header.revision + 1
                new = await client.put(p + b"y", b"new")
                batches = await collect(now, new.header.revision)
            assert [(k, v) for _, k, _, v in events_of(batches)] == [(p + b"y", b"new")]

    run(main)


def test_watch_progress_notify(etcd_endpoint: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            p = b"/watch/progress/"
            current = await client.current_revision()
            async with client.watch(
                p, prefix_end(p), start_revision=current + 1, progress_notify=True
            ) as w:
                batch = await w.__anext__()
            assert batch.progress and batch.events == []
            assert batch.revision >= current

    run(main)


def test_compaction(own_etcd: str) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([own_etcd]) as client:
            revs = [(await client.put(b"/c/k", str(i).encode())).header.revision for i in range(5)]
            await client.compact(revs[3])
            with pytest.raises(CompactedError) as exc:
                async with client.watch(b"/c/k", None, start_revision=revs[1]) as w:
                    await w.__anext__()
            assert exc.value.compact_revision == revs[3]
            with pytest.raises(CompactedError):
                await client.range(b"/c/k", revision=revs[1])
            with pytest.raises(CompactedError):
                await client.compact(revs[2])
            with pytest.raises(EtcdError) as future:
                await client.compact(revs[-1] + 100)
            assert future.value.code == grpc.StatusCode.OUT_OF_RANGE
            # the compaction point itself is still readable and watchable
            assert (await client.range(b"/c/k", revision=revs[3])).kvs[0].value == b"3"
            async with client.watch(b"/c/k", None, start_revision=revs[3]) as w:
                batches = await collect(w, revs[4])
            assert [v for *_, v in events_of(batches)] == [b"3", b"4"]
            await client.compact(revs[4], physical=True)
        assert_no_connections(own_etcd)

    run(main)


def test_watch_survives_etcd_restart(tmp_path: Path) -> None:
    client_port, peer_port = free_port(), free_port()
    endpoint, process = start_etcd(tmp_path, client_port=client_port, peer_port=peer_port)
    processes = [process]

    async def main() -> None:
        async with await EtcdClient.connect([endpoint], timeout=2.0) as client:
            start = (await client.put(b"/r/k", b"0")).header.revision
            async with client.watch(b"/r/", prefix_end(b"/r/"), start_revision=start) as w:
                got = await collect(w, start)
                stop_etcd(processes[-1], kill=True)
                with pytest.raises(EtcdUnavailable):
                    await client.put(b"/r/k", b"lost")
                _, restarted = await trio.to_thread.run_sync(
                    lambda: start_etcd(tmp_path, client_port=client_port, peer_port=peer_port)
                )
                processes.append(restarted)
                for i in range(1, 4):
                    last = await client.put(b"/r/k", str(i).encode())
                got += await collect(w, last.header.revision)
            assert [v for *_, v in events_of(got)] == [b"0", b"1", b"2", b"3"]
            revisions = [r for _, _, r, _ in events_of(got)]
            assert revisions == list(range(start, start + 4))

    try:
        run(main, timeout=60)
    finally:
        for p in processes:
            stop_etcd(p)


# -- endpoints, failures, cancellation -----------------------------------------------------
def test_failover_from_dead_endpoint(etcd_endpoint: str) -> None:
    dead = f"127.0.0.1:{free_port()}"

    async def main() -> None:
        async with await EtcdClient.connect(
            [f"http://{dead}", etcd_endpoint], timeout=2.0
        ) as client:
            assert client.current_endpoint == etcd_endpoint
            put = await client.put(b"/failover/k", b"v")
            assert (await client.range(b"/failover/k")).kvs[0].mod_revision == put.header.revision
            lease, _ = await client.lease_grant(10)
            assert await client.keepalive([lease]) == {lease: 10}
            await client.lease_revoke(lease)

        # without connect(): the first call of each kind finds the dead endpoint itself
        async with EtcdClient([dead, etcd_endpoint], timeout=2.0) as client:
            rev = (await client.put(b"/failover/k", b"w")).header.revision
            assert client.current_endpoint == etcd_endpoint
        client = EtcdClient([dead, etcd_endpoint], timeout=2.0)
        async with client, client.watch(b"/failover/k", None, start_revision=rev) as w:
            assert client.current_endpoint == etcd_endpoint
            assert events_of(await collect(w, rev))[0][3] == b"w"
        async with EtcdClient([dead, etcd_endpoint], timeout=2.0) as client:
            assert await client.keepalive([1]) == {1: 0}
            assert client.current_endpoint == etcd_endpoint

    run(main)


def test_unavailable_when_all_endpoints_dead() -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]

    async def main() -> None:
        # refused connections: the client goes round the endpoints for `timeout` s, then fails
        async def fails_in_time(fn: Callable[[], Awaitable[Any]]) -> EtcdUnavailable:
            t0 = trio.current_time()
            with pytest.raises(EtcdUnavailable) as exc:
                await fn()
            assert 0.4 < trio.current_time() - t0 < 1.5
            return exc.value

        exc = await fails_in_time(lambda: EtcdClient.connect(dead, timeout=0.5))
        assert exc.code == grpc.StatusCode.UNAVAILABLE
        assert exc.endpoints == tuple(dead)
        async with EtcdClient(",".join(dead), timeout=0.5, reconnect_timeout=0.5) as client:
            exc = await fails_in_time(lambda: client.put(b"k", b"v"))
            assert not exc.indeterminate  # refused: certainly not applied
            await fails_in_time(lambda: client.keepalive([1]))

            async def watch() -> None:
                async with client.watch(b"k", None, start_revision=0):
                    pass

            await fails_in_time(watch)

    run(main)


def test_unanswered_requests_time_out(tmp_path: Path) -> None:
    async def main() -> None:
        with blackhole() as hole:
            async with EtcdClient([hole], timeout=0.5) as client:
                t0 = trio.current_time()
                with pytest.raises(EtcdUnavailable) as read_exc:
                    await client.range(b"k")
                assert read_exc.value.code in TIMEOUT_CODES
                with pytest.raises(EtcdUnavailable) as write_exc:
                    await client.put(b"k", b"v")
                # nothing was sent, but when the deadline passes before gRPC's own connect
                # timeout it reports a bare "Deadline Exceeded", so the client may call this
                # indeterminate: the safe side
                assert write_exc.value.code in TIMEOUT_CODES
                assert trio.current_time() - t0 < 3

        # a frozen etcd (SIGSTOP) got the request but does not answer
        endpoint, process = start_etcd(tmp_path)
        try:
            async with await EtcdClient.connect([endpoint], timeout=0.5) as client:
                await client.put(b"k", b"v")
                freeze(process.pid)
                try:
                    with pytest.raises(EtcdUnavailable) as read_exc:
                        await client.range(b"k")
                    assert read_exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
                    with pytest.raises(EtcdUnavailable) as write_exc:
                        await client.put(b"k", b"maybe")
                    assert write_exc.value.indeterminate
                finally:
                    process.send_signal(signal.SIGCONT)
                # once thawed, etcd answers again; whether "maybe" was applied depends on
                # whether its deadline (sent along by gRPC) had passed when etcd saw it
                with trio.fail_after(10):
                    while True:
                        with contextlib.suppress(EtcdUnavailable):
                            value = (await client.range(b"k")).kvs[0].value
                            break
                        await trio.sleep(0.05)
                assert value in (b"v", b"maybe")
        finally:
            stop_etcd(process)

    run(main)


def test_cancellation_does_not_leak_or_hang(etcd_endpoint: str) -> None:
    async def main() -> None:
        with blackhole() as hole:
            async with EtcdClient([hole], timeout=30.0) as stuck:
                t0 = trio.current_time()
                with trio.move_on_after(0.2) as scope:
                    await stuck.range(b"k")
                assert scope.cancelled_caught
                with trio.move_on_after(0.2):
                    await stuck.keepalive([1])
                assert trio.current_time() - t0 < 1.5

        async with await EtcdClient.connect([etcd_endpoint]) as client:
            await client.put(b"/cancel/k", b"v")
            # cancel calls at every stage, many times, then check the client still works
            for delay in (0.0, 0.0001, 0.0003, 0.001, 0.003):
                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(client.range, b"/cancel/k")
                        nursery.start_soon(client.keepalive, [1])
                    await trio.sleep(delay)
                    nursery.cancel_scope.cancel()
            with trio.CancelScope() as pre:  # already cancelled: nothing is sent
                pre.cancel()
                await client.put(b"/cancel/k", b"never")
            assert (await client.range(b"/cancel/k")).kvs[0].value == b"v"
            assert await client.keepalive([1]) == {1: 0}
        assert_no_connections(etcd_endpoint)

    run(main)


def test_aclose_with_open_watch(etcd_endpoint: str) -> None:
    async def main() -> None:
        client = await EtcdClient.connect([etcd_endpoint])
        outcome: list[BaseException] = []

        async def consume() -> None:
            try:
                async with client.watch(
                    b"/aclose/", prefix_end(b"/aclose/"), start_revision=0
                ) as w:
                    async for _ in w:
                        pass
            except trio.ClosedResourceError as exc:
                outcome.append(exc)

        async def read_forever() -> None:
            try:
                while True:
                    await client.range(b"/aclose/k")
            except trio.ClosedResourceError as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            nursery.start_soon(consume)  # a second watch, and a keep-alive stream
            for _ in range(4):
                nursery.start_soon(read_forever)
            await client.keepalive([1])
            await trio.sleep(0.2)
            with trio.fail_after(3):
                await client.aclose()
        assert len(outcome) == 6
        assert_no_connections(etcd_endpoint)
        with pytest.raises(trio.ClosedResourceError):
            await client.range(b"k")

        # leaving a watch's scope by cancellation closes it too
        async with await EtcdClient.connect([etcd_endpoint]) as client2:
            with trio.move_on_after(0.3):
                async with client2.watch(b"/aclose/", None, start_revision=0) as w:
                    async for _ in w:
                        pass
            assert open_calls(client2) == 0
        assert_no_connections(etcd_endpoint)

    run(main)


# -- throughput (printed, not asserted) ----------------------------------------------------------
def test_throughput(etcd_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> list[str]:
        lines = []
        async with await EtcdClient.connect([etcd_endpoint]) as client:
            await client.put(b"/bench/k", b"v" * 100)

            async def measure(
                label: str, call: Callable[[], Awaitable[Any]], n: int, tasks: int
            ) -> None:
                per_task = n // tasks

                async def worker() -> None:
                    for _ in range(per_task):
                        await call()

                wall, cpu = time.perf_counter(), time.process_time()
                async with trio.open_nursery() as nursery:
                    for _ in range(tasks):
                        nursery.start_soon(worker)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                total = per_task * tasks
                lines.append(
                    f"{label:<28} {total / wall:8.0f} calls/s  {cpu / total * 1e6:6.0f} us CPU/call"
                )

            def rng() -> Awaitable[Any]:
                return client.range(b"/bench/k")

            def put() -> Awaitable[Any]:
                return client.put(b"/bench/k", b"v" * 100)

            await measure("warm-up", rng, 200, 1)
            lines.pop()
            await measure("range sequential", rng, 1000, 1)
            await measure("range 64 concurrent", rng, 3200, 64)
            await measure("put sequential", put, 1000, 1)
            await measure("put 64 concurrent", put, 3200, 64)
        return lines

    lines = run(main, timeout=120)
    with capsys.disabled():
        print("\netcd client throughput (one trio run, one endpoint):")
        for line in lines:
            print("  " + line)
