"""An etcd emulation backend run in the test's own trio loop, on a fresh prefix of a real etcd."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from tests.servers import EtcdServer
from zetcd.emulation.backend import EtcdBackend, Options
from zetcd.etcd import EtcdClient


@asynccontextmanager
async def running_backend(
    etcd: EtcdServer, **options: Any
) -> AsyncIterator[tuple[EtcdClient, EtcdBackend]]:
    """A backend (``Options(**options)``) on a fresh prefix of ``etcd``, and its etcd client,
    running until the block ends."""
    prefix = f"/zetcd-backend-{uuid.uuid4().hex[:8]}/".encode()
    async with await EtcdClient.connect([etcd.endpoint]) as client:
        backend = EtcdBackend(client, Options(prefix=prefix, **options))
        async with trio.open_nursery() as nursery:
            await nursery.start(backend.run)
            yield client, backend
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def twin_backends(
    etcd: EtcdServer,
) -> AsyncIterator[tuple[EtcdClient, EtcdBackend, EtcdClient, EtcdBackend]]:
    """Two backends (two zetcds) on one fresh prefix, each with its own etcd client."""
    prefix = f"/zetcd-twins-{uuid.uuid4().hex[:8]}/".encode()
    async with (
        await EtcdClient.connect([etcd.endpoint]) as client_a,
        await EtcdClient.connect([etcd.endpoint]) as client_b,
    ):
        a = EtcdBackend(client_a, Options(prefix=prefix))
        b = EtcdBackend(client_b, Options(prefix=prefix))
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            yield client_a, a, client_b, b
            nursery.cancel_scope.cancel()


def never_at_once(request: bytes, notify: Callable[[], None] | None = None) -> None:
    """A stand-in for EtcdClient.start_txn: every txn is left to the batcher's task."""
    return None
