"""etcd alone: one put at a time, the least any zetcd write at 1x1 waits for.

A zetcd write is one etcd transaction, so at 1 session x 1 outstanding request zetcd can be no
faster than etcd's own round trip for a write. This measures that round trip on the bench's etcd,
in the same run as the ZooKeeper and zetcd cases, from zetcd's own etcd client (the HTTP/2 client
zetcd sends its transactions with), with a watch open on the keys written, as zetcd's mirror has
one, so etcd sends an event per put as it does for zetcd's writes. For ``set`` each put overwrites
one of ``keys`` keys in turn; for ``create`` each puts a new key. The keys live under a prefix of
their own (never zetcd's) and are deleted afterwards, DELETE_CHUNK keys per request: etcd 3.4
copies its buffer of uncommitted writes for every transaction, and that buffer keeps the size of
the largest batch of writes it ever held, so one delete of every key would slow each of zetcd's
later transactions for the rest of the run (docs/architecture.md, "etcd 3.4's write buffer").

The result has the load generator's shape: ``ops_per_sec``, ``p50_us``, ``p99_us``, ``mean_us``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from zetcd.etcd import EtcdClient, prefix_end

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
    client = await EtcdClient.connect(endpoint)
    try:
        async with client.watch(
            prefix, prefix_end(prefix), start_revision=0, keeps_reading=True
        ) as events:

            async def drain() -> None:
                async for _batch in events:
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                latencies: list[float] = []
                i = 0
                start = time.perf_counter()
                window = start + warmup
                end = window + seconds
                now = start
                while now < end:
                    key = _key(prefix, i if op == "create" else i % keys)
                    i += 1
                    sent = time.perf_counter()
                    await client.put(key, value)
                    now = time.perf_counter()
                    if sent >= window:
                        latencies.append(now - sent)
                nursery.cancel_scope.cancel()
        written = i if op == "create" else min(i, keys)
        for first in range(0, written, DELETE_CHUNK):
            last = min(first + DELETE_CHUNK, written)
            await client.delete_range(_key(prefix, first), _key(prefix, last))
    finally:
        await client.aclose()
    if not latencies:
        return {"failure": "no put finished in the measured window"}
    us = sorted(x * 1e6 for x in latencies)
    return {
        "ops_per_sec": len(us) / (now - window),
        "p50_us": _percentile(us, 0.5),
        "p99_us": _percentile(us, 0.99),
        "mean_us": sum(us) / len(us),
    }


def measure(
    endpoint: str, op: str, seconds: float, warmup: float, keys: int, value_size: int
) -> dict[str, Any]:
    """Puts at 1x1 on ``endpoint`` for ``warmup`` + ``seconds`` s; figures of the measured part."""
    try:
        return trio.run(_measure, endpoint, op, seconds, warmup, keys, value_size)
    except Exception as e:  # reported in the table like a failed case, never fatal
        return {"failure": f"{type(e).__name__}: {e}"}
