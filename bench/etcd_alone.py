"""etcd alone: one write at a time, the least any zetcd write at 1x1 waits for.

A zetcd write is one etcd transaction, so at 1 session x 1 outstanding request zetcd can be no
faster than etcd's own round trip for that transaction. This measures it on the bench's etcd,
in the same run as the ZooKeeper and zetcd cases, from zetcd's own etcd client (the HTTP/2 client
zetcd sends its transactions with), with a watch open on the keys written, as zetcd's mirror has
one, so etcd sends an event per write as it does for zetcd's writes. Two kinds of write
alternate, one request each:

- zetcd's transaction (the figures that bound zetcd): what a lone zetcd sends for one setData or
  create, guarded by the fence and the session record (two compares) and putting the znode's
  data key and the fence, and for ``create`` the parent's children key too
  (docs/architecture.md, "Key layout" and "The fence");
- a plain put of the same key (``put``): etcd 3.4 serves a transaction more slowly than a put,
  even one with a single put and no compare, as every transaction starts with a read view that
  copies etcd's write buffer (docs/architecture.md, "etcd 3.4's write buffer").

For ``set`` each write overwrites one of ``keys`` keys in turn; for ``create`` each writes a new
key. The keys live under a prefix of their own (never zetcd's) and are deleted afterwards,
DELETE_CHUNK keys per request: etcd 3.4 copies its buffer of uncommitted writes for every
transaction, and that buffer keeps the size of the largest batch of writes it ever held, so one
delete of every key would slow each of zetcd's later transactions for the rest of the run.

The result has the load generator's shape (``ops_per_sec``, ``p50_us``, ``p99_us``,
``mean_us``: those of zetcd's transaction; at 1x1 the rate is one over the mean latency), plus
``put``: the same figures for the plain puts.
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from zetcd.etcd import EtcdClient, encode_txn, prefix_end

DELETE_CHUNK = 256  # keys per delete: within etcd 3.4's initial buffer of 512 writes


def _key(prefix: bytes, n: int) -> bytes:
    return prefix + b"k%010d" % n  # zero-padded: keys n..m-1 are the range [key n, key m)


def _percentile(sorted_us: list[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))]


async def _measure(
    endpoint: str, op: str, seconds: float, warmup: float, keys: int, value_size: int
) -> dict[str, Any]:
    prefix = f"/zetcd-bench-etcd-alone-{os.getpid()}/".encode()
    value = b"v" * value_size
    fence = prefix + b"!fence"
    session = prefix + b"s/1"
    children = prefix + b"c/parent"
    stamp = b"%016d" % 0  # the fence's value: a transaction's time, 16 digits
    client = await EtcdClient.connect(endpoint)
    try:
        session_rev = (await client.put(session, b"session")).header.revision
        fence_rev = (await client.put(fence, stamp)).header.revision
        async with client.watch(
            prefix, prefix_end(prefix), start_revision=0, keeps_reading=True
        ) as events:

            async def drain() -> None:
                async for _batch in events:
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                latencies: dict[str, list[float]] = {"txn": [], "put": []}
                i = 0
                start = time.perf_counter()
                window = start + warmup
                end = window + seconds
                now = start
                while now < end:
                    key = _key(prefix, i if op == "create" else i % keys)
                    kind = "put" if i % 2 else "txn"
                    i += 1
                    sent = time.perf_counter()
                    if kind == "put":
                        await client.put(key, value)
                    else:
                        puts = [(key, value, 0), (fence, stamp, 0)]
                        if op == "create":
                            puts.insert(1, (children, b"", 0))
                        compares = [(fence, "mod", fence_rev), (session, "mod", session_rev)]
                        resp = await client.txn_encoded(encode_txn(compares, puts))
                        if not resp.succeeded:
                            raise RuntimeError("a guarded transaction failed its compares")
                        fence_rev = resp.header.revision
                    now = time.perf_counter()
                    if sent >= window:
                        latencies[kind].append(now - sent)
                nursery.cancel_scope.cancel()
        written = i if op == "create" else min(i, keys)
        for first in range(0, written, DELETE_CHUNK):
            last = min(first + DELETE_CHUNK, written)
            await client.delete_range(_key(prefix, first), _key(prefix, last))
        for k in (fence, session, children):
            await client.delete_range(k)
    finally:
        await client.aclose()
    if not latencies["txn"] or not latencies["put"]:
        return {"failure": "no write finished in the measured window"}
    return {**_figures(latencies["txn"]), "put": _figures(latencies["put"])}


def _figures(latencies: list[float]) -> dict[str, float]:
    us = sorted(x * 1e6 for x in latencies)
    mean = sum(us) / len(us)
    return {
        "ops_per_sec": 1e6 / mean,
        "p50_us": _percentile(us, 0.5),
        "p99_us": _percentile(us, 0.99),
        "mean_us": mean,
    }


def measure(
    endpoint: str, op: str, seconds: float, warmup: float, keys: int, value_size: int
) -> dict[str, Any]:
    """Writes at 1x1 on ``endpoint`` for ``warmup`` + ``seconds`` s; figures of the measured
    part (see above)."""
    try:
        return trio.run(_measure, endpoint, op, seconds, warmup, keys, value_size)
    except Exception as e:  # reported in the table like a failed case, never fatal
        return {"failure": f"{type(e).__name__}: {e}"}
