"""Watch: one etcd watch on its own stream, iterated as gap-free ``WatchBatch``es."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import trio
from pyetcd.etcdrpc import rpc_pb2

from ._conn import FAILOVER_CODES, Rounds
from ._http2 import Http2Stream, StreamEnded
from .errors import CompactedError, EtcdError, translate_rpc_error

if TYPE_CHECKING:
    from .client import EtcdClient

__all__ = ["Watch", "WatchBatch"]

log = logging.getLogger(__name__)


# how long a watch whose start revision a range found compacted waits for etcd's own notice
COMPACTION_NOTICE_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response.

    ``revision`` is the response header's revision (the store's revision when etcd sent it; it
    can be above the last event's). ``events`` are ``mvccpb.Event``s (``type`` PUT=0/DELETE=1,
    ``kv``, ``prev_kv``) in revision order, possibly spanning several revisions; use
    ``event.kv.mod_revision``. ``progress`` marks an event-less progress notification: every
    event up to ``revision`` has been delivered. ``compact_revision`` is always 0 in a delivered
    batch (compaction raises ``CompactedError`` instead); it is there for completeness.
    """

    revision: int
    events: list[Any]
    compact_revision: int = 0
    progress: bool = False


def _retriable(err: Any) -> bool:
    if err is None:  # the server ended the stream without an error: re-establish it
        return True
    code = err.code() if hasattr(err, "code") else None
    return code in FAILOVER_CODES


class Watch:
    """Async context manager and async iterator of :class:`WatchBatch`; see ``EtcdClient.watch``."""

    def __init__(
        self,
        client: EtcdClient,
        key: bytes,
        range_end: bytes | None,
        *,
        start_revision: int,
        prev_kv: bool = False,
        progress_notify: bool = False,
        keeps_reading: bool = False,
    ) -> None:
        self._client = client
        self._keeps_reading = keeps_reading  # see EtcdClient.watch
        self._key = key
        self._range_end = range_end or b""
        self._prev_kv = prev_kv
        self._progress_notify = progress_notify
        # The revision the watch must resume from; 0 until known when watching "from now".
        self._next_revision = start_revision
        self._stream: Http2Stream | None = None
        self._index = 0
        self._closed = False
        self._failed: BaseException | None = None
        self._pending: WatchBatch | None = None
        self._lost = False  # the stream failed and is being opened again (logged both ways)

    @property
    def next_revision(self) -> int:
        """The first revision not yet delivered."""
        return self._next_revision

    async def __aenter__(self) -> Self:
        try:
            await self._establish(patience=self._client.timeout)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the stream."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchBatch:
        while True:
            if self._failed is not None:
                raise self._failed
            if self._closed:
                raise StopAsyncIteration
            pending = self._pending
            if pending is not None:
                self._pending = None
                return pending
            stream = self._stream
            if stream is None:
                await self._establish(patience=self._client.reconnect_timeout)
                continue
            try:
                response = await stream.receive()
            except StreamEnded as end:
                self._drop(stream)
                if self._closed:
                    raise StopAsyncIteration from None
                if end.closed:
                    self._client._check_open()
                if not _retriable(end.error):
                    self._failed = translate_rpc_error(end.error)
                    raise self._failed from None
                log.warning(
                    "etcd watch lost on %s (%s); reconnecting",
                    self._client._endpoints[self._index].target,
                    end.error or "stream ended",
                )
                self._lost = True
                self._client._failed(self._index)
                continue
            batch = self._handle(response)
            if batch is not None:
                return batch

    # -- internals -------------------------------------------------------------------------
    def _drop(self, stream: Http2Stream) -> None:
        stream.close()
        if self._stream is stream:
            self._stream = None

    def _handle(self, response: Any) -> WatchBatch | None:
        revision = int(response.header.revision)
        if response.canceled or response.compact_revision:
            if self._stream is not None:
                self._drop(self._stream)
            if response.compact_revision:
                self._failed = CompactedError(
                    f"watch from revision {self._next_revision} failed: history compacted "
                    f"up to revision {response.compact_revision}",
                    int(response.compact_revision),
                )
            else:
                self._failed = EtcdError(response.cancel_reason or "watch canceled by etcd")
            raise self._failed
        if response.created:
            if self._next_revision == 0:
                self._next_revision = revision + 1
            return None
        events = list(response.events)
        if events:
            self._next_revision = int(events[-1].kv.mod_revision) + 1
            return WatchBatch(revision, events)
        self._next_revision = max(self._next_revision, revision + 1)
        return WatchBatch(revision, events, progress=True)

    async def _check_not_compacted(self, stream: Http2Stream) -> None:
        """Raise CompactedError if the revision the watch starts from is compacted. etcd 3.4
        should say so on the stream, but a watch created from a compacted revision can stay
        silent for ever instead (seen after etcd dropped a stopped client's connection: its
        metrics count the watcher as unsynced and it never syncs); a range at that revision
        tells. etcd's own answer, which names the compaction point, is then awaited for a
        moment (COMPACTION_NOTICE_WAIT)."""
        try:
            await self._client.range(
                self._key, self._range_end, revision=self._next_revision, count_only=True
            )
            return
        except CompactedError:
            pass
        with trio.move_on_after(COMPACTION_NOTICE_WAIT):
            try:
                while True:  # _handle raises etcd's CompactedError when it comes
                    self._handle(await stream.receive())
            except StreamEnded:
                pass
        self._drop(stream)
        self._failed = CompactedError(
            f"watch from revision {self._next_revision} failed: history compacted"
        )
        raise self._failed

    async def _establish(self, *, patience: float) -> None:
        """Open the stream on the current endpoint (failing over) and wait for "created".

        Tries every endpoint, then goes round again after a growing pause until ``patience``
        seconds have passed since the first failure; raises ``EtcdUnavailable`` after that.
        """
        client = self._client
        rounds: Rounds | None = None
        renewed = False
        while True:
            client._check_open()
            index = client._current
            seq = client._auth_seq
            stream = client._open_stream(index, "Watch", self._keeps_reading)
            create = rpc_pb2.WatchCreateRequest(
                key=self._key,
                range_end=self._range_end,
                start_revision=self._next_revision,
                prev_kv=self._prev_kv,
                progress_notify=self._progress_notify,
            )
            stream.send(rpc_pb2.WatchRequest(create_request=create))
            ok = False
            refused = False
            last: Any = None
            try:
                with trio.move_on_after(client.timeout):
                    response = await stream.receive()
                    # etcd refuses a watch for its auth token by cancelling it at once (older
                    # etcd releases say "permission denied" for that too: a token is renewed
                    # once for it)
                    reason = response.cancel_reason if response.canceled else ""
                    refused = client.token_refused(reason) or (
                        not renewed
                        and client.authenticates
                        and "etcdserver: permission denied" in reason
                    )
                    if refused:
                        last = response.cancel_reason
                    else:
                        self._index = index
                        self._stream = stream
                        ok = True
                if not ok and not refused:
                    last = TimeoutError(f"watch not created within {client.timeout} s")
            except StreamEnded as end:
                if end.closed:
                    client._check_open()
                refused = client.token_refused(end.error)
                if not refused and not _retriable(end.error):
                    raise translate_rpc_error(end.error) from None
                last = end.error or ConnectionError("watch stream ended")
            finally:
                if not ok:
                    stream.close()
            if refused and not renewed:
                renewed = True
                await client._authenticate(seq)
                continue
            if refused:  # and a new token did not help: as for an endpoint that did not answer
                renewed = False  # the next round may renew it again
            if ok:
                if self._lost:
                    self._lost = False
                    log.warning(
                        "etcd watch re-established on %s from revision %d",
                        client._endpoints[index].target,
                        self._next_revision,
                    )
                # etcd answers "created" first; anything else is kept for __anext__.
                self._pending = self._handle(response)
                if 0 < self._next_revision <= int(response.header.revision):
                    await self._check_not_compacted(stream)
                return
            client._failed(index)
            rounds = rounds or Rounds(len(client._endpoints), patience)
            if not await rounds.failed():
                raise client._unavailable(last)
