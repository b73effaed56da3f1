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


def never_at_once(request: bytes, notify: Callable[[], None] | None = None) -> None:
    """A stand-in for EtcdClient.start_txn: every txn is left to the batcher's task."""
    return None
