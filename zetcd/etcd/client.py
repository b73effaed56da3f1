"""EtcdClient: a thin trio-native etcd v3 client (KV, Txn, Lease, Watch) over pyetcd's messages.

Calls return the raw protobuf responses. Every call, unary or streaming (watch, lease keep-alive),
goes over the project's own HTTP/2 client (``_http2.py``), in the trio thread: no gRPC threads.

Failover and retries. The client talks to one endpoint at a time. When it does not answer (gRPC
UNAVAILABLE or a deadline) the client moves on to the next one and replays the request there:
always for reads, and for writes only when the error proves etcd never processed the request
(the connection could not be made, or the member refused it for having no leader; every request
carries etcd's "hasleader" metadata, so a member cut off from its cluster refuses at once
instead of timing out). Otherwise a write raises ``EtcdUnavailable(indeterminate=True)``: it may
have been applied, and replaying it could apply it twice. After every endpoint has failed once,
the client goes round again with a growing pause for up to ``timeout`` seconds (this rides over
leader elections and restarts), then raises ``EtcdUnavailable``. Each attempt has a deadline of
``timeout`` seconds, so a call takes at most about ``max(2, len(endpoints)) * timeout``.

Cancelling a task inside a call cancels the call (the stream is reset); a cancelled write may
still have been applied. A client belongs to the trio run that created it; ``aclose()`` it before that run ends.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import trio
from pyetcd.etcdrpc import rpc_pb2

from ._conn import (
    FAILOVER_CODES,
    REQUIRE_LEADER,
    UNARY,
    Endpoint,
    Rounds,
    Started,
    endpoints_tls,
    is_never_sent,
    parse_endpoints,
)
from ._http2 import Http2Stream, StreamEnded
from .errors import EtcdError, EtcdUnavailable, translate_rpc_error
from .tls import client_context
from .watch import Watch

__all__ = ["EtcdClient"]

log = logging.getLogger(__name__)

# Any key works for current_revision(); count_only makes the answer tiny whatever it holds.
_REVISION_PROBE_KEY = b"\0zetcd/revision-probe"

_RangeRequest: Any = rpc_pb2.RangeRequest
_PutRequest: Any = rpc_pb2.PutRequest
_DeleteRangeRequest: Any = rpc_pb2.DeleteRangeRequest
_TxnRequest: Any = rpc_pb2.TxnRequest
_TxnResponse: Any = rpc_pb2.TxnResponse
# what etcd says when it refuses a request for its auth token (see EtcdClient.token_refused)
TOKEN_REFUSED = ("etcdserver: invalid auth token", "etcdserver: revision of auth store is old")
AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
_TXN_PATH = UNARY["Txn"][0]


def _details(err: Any) -> str:
    """What a gRPC error says (its details), or the text of whatever else stands for a failure
    (a timeout, a cancelled watch's reason)."""
    return (err.details() if hasattr(err, "details") else None) or str(err)


class TxnStarted:
    """A txn sent by EtcdClient.start_txn, its answer still to come."""

    __slots__ = ("auth_seq", "endpoint", "request", "response", "since", "started")

    def __init__(self, endpoint: int, started: Started, request: bytes, auth_seq: int) -> None:
        self.endpoint = endpoint  # its index
        self.started = started
        self.request = request
        self.auth_seq = auth_seq  # the client's authentications when it was sent
        self.since = time.perf_counter()  # when sent
        self.response: Any = None  # the TxnResponse, once taken

    @property
    def deadline(self) -> float:
        """When (trio time) :meth:`EtcdClient.finish_txn` gives up on the answer."""
        return self.started.deadline


class EtcdClient:
    """See the module docstring. Build with :meth:`connect` (which checks reachability)."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout: float = 5.0,
        reconnect_timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        targets = parse_endpoints(endpoints)
        if endpoints_tls(endpoints, tls is not None) and tls is None:
            tls = client_context()  # https:// endpoints, the system's trusted CAs
        self._endpoints = [Endpoint(t, tls) for t in targets]
        self._current = 0
        self.timeout = timeout
        # How long a broken watch keeps trying to re-establish itself before EtcdUnavailable.
        self.reconnect_timeout = reconnect_timeout
        self._closed = False
        self._streams: set[Http2Stream] = set()
        self._keepalive_stream: Http2Stream | None = None
        self._keepalive_lock = trio.Lock()
        self._auth = auth  # etcd user and password
        self._auth_seq = 0  # tokens got so far
        self._auth_lock = trio.Lock()

    @classmethod
    async def connect(
        cls,
        endpoints: str | Sequence[str],
        *,
        timeout: float = 5.0,
        reconnect_timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> EtcdClient:
        """A client whose first reachable endpoint answered a Status call. ``tls``: the SSL
        context for TLS endpoints (``tls.client_context``; see ``endpoints_tls`` for which).
        ``auth``: (user, password) for an etcd with authentication enabled; a wrong pair
        raises ``EtcdError`` (INVALID_ARGUMENT).

        Raises ``EtcdUnavailable`` if none does (after the retries described in the module
        docstring: about ``timeout`` s when connections are refused).
        """
        client = cls(
            endpoints, timeout=timeout, reconnect_timeout=reconnect_timeout, tls=tls, auth=auth
        )
        try:
            if auth is not None:
                await client._authenticate(0)
            await client._unary("Status", rpc_pb2.StatusRequest(), idempotent=True)
        except BaseException:
            await client.aclose()
            raise
        return client

    @property
    def endpoints(self) -> list[str]:
        return [ep.target for ep in self._endpoints]

    @property
    def current_endpoint(self) -> str:
        return self._endpoints[self._current].target

    async def aclose(self) -> None:
        """Close every open watch and the keep-alive stream, then the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        streams = list(self._streams)
        self._streams.clear()
        self._keepalive_stream = None
        for stream in streams:
            stream.close()
        for ep in self._endpoints:
            ep.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- plumbing ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("etcd client is closed")

    def _failed(self, index: int) -> None:
        """Endpoint ``index`` did not answer: move on, unless another task already did."""
        if self._current == index:
            self._current = (index + 1) % len(self._endpoints)

    def _unavailable(self, err: Any, *, indeterminate: bool = False) -> EtcdUnavailable:
        code = err.code() if hasattr(err, "code") else None
        details = _details(err)
        what = "no answer (the request may have been applied)" if indeterminate else "unavailable"
        return EtcdUnavailable(
            f"etcd {what}: {details}",
            endpoints=self.endpoints,
            code=code,
            indeterminate=indeterminate,
        )

    observer: Callable[[str, bool, float], None] | None = None
    """Called after each unary call with (method, succeeded, seconds): a metrics hook."""

    async def _unary(self, method: str, request: Any, *, idempotent: bool) -> Any:
        """Call ``method`` with a request message (or its serialization, as bytes)."""
        observer = self.observer
        if observer is None:
            return await self._unary_call(method, request, idempotent=idempotent)
        started = time.perf_counter()
        ok = False
        try:
            result = await self._unary_call(method, request, idempotent=idempotent)
            ok = True
            return result
        finally:
            observer(method, ok, time.perf_counter() - started)

    async def _unary_call(
        self,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> Any:
        self._check_open()
        await trio.lowlevel.checkpoint_if_cancelled()
        path, response_type = UNARY[method]
        message = request if isinstance(request, bytes) else request.SerializeToString()
        rounds: Rounds | None = None
        renewed = False
        while True:
            index = self._current
            seq = self._auth_seq
            try:
                answer = await self._endpoints[index].call(path, message, self.timeout, metadata)
                return response_type.FromString(answer)
            except grpc.RpcError as err:
                if metadata is None and not renewed and self.token_refused(err):
                    renewed = True  # refused before etcd did anything: it may go again
                    await self._authenticate(seq)
                    continue
                self._retry_or_raise(err, index, idempotent)
                rounds = rounds or Rounds(len(self._endpoints), self.timeout)
                if not await rounds.failed():
                    raise self._unavailable(err) from None

    @property
    def authenticates(self) -> bool:
        """Does the client log in to etcd (a user given, and etcd's authentication on)?"""
        return self._auth is not None

    def token_refused(self, err: Any) -> bool:
        """Did etcd refuse a request for its auth token (expired: etcd's simple tokens end
        after --auth-token-ttl idle seconds, and all at once when etcd restarts; or, etcd's
        other refusal, issued before a change of users or roles, which etcd 3.4's simple
        tokens were not refused for in our tests)? Then nothing was done, and with a new
        token the request may go again."""
        if self._auth is None or err is None:
            return False
        text = _details(err)  # err: a call's error, or a cancelled watch's reason
        return any(reason in text for reason in TOKEN_REFUSED)

    async def _authenticate(self, seen: int) -> None:
        """Get a new auth token for every call from now on, unless another task has since
        ``seen`` authentications (then its token is the new one)."""
        assert self._auth is not None
        async with self._auth_lock:
            if self._auth_seq != seen:
                return
            name, password = self._auth
            request = rpc_pb2.AuthenticateRequest(name=name, password=password)
            # without the old token, which etcd would refuse before it looked at the password
            try:
                response = await self._unary_call(
                    "Authenticate", request, idempotent=True, metadata=REQUIRE_LEADER
                )
            except EtcdError as e:
                if AUTH_NOT_ENABLED not in str(e):
                    raise
                # as etcdctl: work without a token (users are often made before auth is on)
                log.warning("etcd's authentication is not enabled: working without logging in")
                self._auth = None
                return
            metadata = (*REQUIRE_LEADER, ("token", response.token))
            for endpoint in self._endpoints:
                endpoint.set_metadata(metadata)
            self._auth_seq += 1

    def _retry_or_raise(self, err: Any, index: int, idempotent: bool) -> None:
        """A call to endpoint ``index`` failed with ``err``: return if it may go again (on the
        next endpoint), else raise what the caller sees."""
        self._check_open()  # aclose() from another task ended the call
        if err.code() not in FAILOVER_CODES:
            raise translate_rpc_error(err) from None
        self._failed(index)
        if not idempotent and not is_never_sent(err):
            raise self._unavailable(err, indeterminate=True) from None

    def _open_stream(self, index: int, method: str, keeps_reading: bool = False) -> Http2Stream:
        self._check_open()
        for old in [s for s in self._streams if s.closed]:
            self._streams.discard(old)
        stream = self._endpoints[index].open_stream(method, keeps_reading)
        self._streams.add(stream)
        return stream

    # -- KV ------------------------------------------------------------------------------------
    async def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        revision: int = 0,
        serializable: bool = False,
        keys_only: bool = False,
        limit: int = 0,
        count_only: bool = False,
    ) -> Any:
        """``rpc_pb2.RangeResponse`` (header.revision, kvs, more, count).

        Raises ``CompactedError`` if ``revision`` has been compacted.
        """
        request = _RangeRequest(
            key=key,
            range_end=range_end or b"",
            revision=revision,
            serializable=serializable,
            keys_only=keys_only,
            limit=limit,
            count_only=count_only,
        )
        return await self._unary("Range", request, idempotent=True)

    async def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> Any:
        """``rpc_pb2.PutResponse`` (header.revision, prev_kv)."""
        request = _PutRequest(key=key, value=value, lease=lease, prev_kv=prev_kv)
        return await self._unary("Put", request, idempotent=False)

    async def delete_range(
        self, key: bytes, range_end: bytes | None = None, *, prev_kv: bool = False
    ) -> Any:
        """``rpc_pb2.DeleteRangeResponse`` (header.revision, deleted, prev_kvs)."""
        request = _DeleteRangeRequest(key=key, range_end=range_end or b"", prev_kv=prev_kv)
        return await self._unary("DeleteRange", request, idempotent=False)

    async def txn(
        self, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any] = ()
    ) -> Any:
        """``rpc_pb2.TxnResponse`` (succeeded, header.revision, responses).

        See ``zetcd.etcd.requests`` for the compare and op builders.
        """
        request = _TxnRequest(compare=compare, success=success, failure=failure)
        read_only = all(op.HasField("request_range") for op in (*success, *failure))
        return await self._unary("Txn", request, idempotent=read_only)

    async def txn_encoded(self, request: bytes) -> Any:
        """``txn`` of a request serialized by ``requests.encode_txn`` (a write: not retried
        once it may have been sent)."""
        return await self._unary("Txn", request, idempotent=False)

    def start_txn(
        self, request: bytes, notify: Callable[[], None] | None = None
    ) -> TxnStarted | None:
        """Send a serialized txn now, from the caller's task, without waiting, when the
        current endpoint's connection can take it at once; None if not (then use
        :meth:`txn_encoded`). Its answer comes from :meth:`finish_txn`, which must be
        awaited, unless :meth:`txn_answered` takes it first.

        ``notify`` is called when the call is over, or when no task is left to read its answer
        (then :meth:`finish_txn` must be awaited); see :meth:`txn_has_reader`."""
        if self._closed:
            return None
        index = self._current
        started = self._endpoints[index].start(_TXN_PATH, request, self.timeout, notify)
        if started is None:
            return None
        return TxnStarted(index, started, request, self._auth_seq)

    def txn_answered(self, txn: TxnStarted) -> Any:
        """The ``TxnResponse`` of a txn sent by :meth:`start_txn` if etcd's answer is already
        in (read by whichever task was reading the connection), taken without waiting; None if
        it is not, or if the call failed (:meth:`finish_txn` then deals with that). Once
        taken, :meth:`finish_txn` returns the same response at once."""
        if txn.response is None:
            answer = Endpoint.answered(txn.started)
            if answer is None:
                return None
            txn.response = _TxnResponse.FromString(answer)
            if self.observer is not None:
                self.observer("Txn", True, time.perf_counter() - txn.since)
        return txn.response

    async def finish_txn(self, txn: TxnStarted) -> Any:
        """The ``TxnResponse`` of a txn sent by :meth:`start_txn`; errors as :meth:`txn_encoded`
        (one never sent goes again by :meth:`txn_encoded`)."""
        if txn.response is not None:
            return txn.response
        ok: bool | None = False
        try:
            try:
                answer = await Endpoint.finish(txn.started)
            except grpc.RpcError as err:
                if self.token_refused(err):
                    await self._authenticate(txn.auth_seq)
                else:
                    self._retry_or_raise(err, txn.endpoint, idempotent=False)
                response = await self._unary_call("Txn", txn.request, idempotent=False)
            else:
                if txn.response is not None:  # taken (and observed) by txn_answered meanwhile
                    ok = None
                    return txn.response
                response = txn.response = _TxnResponse.FromString(answer)
            ok = True
            return response
        finally:
            if ok is not None and self.observer is not None:
                self.observer("Txn", ok, time.perf_counter() - txn.since)

    @staticmethod
    def txn_has_reader(txn: TxnStarted) -> bool:
        """Will the answer of a txn sent by :meth:`start_txn` be read without a task awaiting
        :meth:`finish_txn` (a watch opened with ``keeps_reading`` shares its connection)?"""
        return Endpoint.has_reader(txn.started)

    def abandon_txn(self, txn: TxnStarted) -> None:
        """Give up on a txn sent by :meth:`start_txn` whose answer no one will take (the
        server is told; it may still have been applied)."""
        Endpoint.abandon(txn.started)

    async def current_revision(self) -> int:
        """The cluster's current revision, by a linearizable (quorum) read."""
        request = _RangeRequest(key=_REVISION_PROBE_KEY, count_only=True)
        response = await self._unary("Range", request, idempotent=True)
        return int(response.header.revision)

    async def compact(self, revision: int, *, physical: bool = False) -> None:
        """Compact history up to ``revision``. ``CompactedError`` if that was already done;
        ``EtcdError`` (OUT_OF_RANGE) for a future revision."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        await self._unary("Compact", request, idempotent=False)

    # -- Lease ---------------------------------------------------------------------------------
    async def lease_grant(self, ttl: int, lease_id: int = 0) -> tuple[int, int]:
        """(lease id, granted TTL). ``lease_id=0`` lets etcd choose; an existing id raises
        ``EtcdError`` (FAILED_PRECONDITION). etcd 3.4 raises small TTLs to its minimum (2 s with
        default timing)."""
        request = rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id)
        response = await self._unary("LeaseGrant", request, idempotent=False)
        if response.error:
            raise EtcdError(response.error)
        return int(response.ID), int(response.TTL)

    async def lease_revoke(self, lease_id: int) -> None:
        """Revoke a lease, deleting its keys. An unknown lease is not an error."""
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        try:
            # Replaying a revoke is harmless: the second one finds no lease.
            await self._unary("LeaseRevoke", request, idempotent=True)
        except EtcdError as err:
            if err.code != grpc.StatusCode.NOT_FOUND:
                raise

    async def lease_ttl(self, lease_id: int) -> int:
        """Remaining TTL in seconds, -1 if the lease does not exist (expired or revoked)."""
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id)
        response = await self._unary("LeaseTimeToLive", request, idempotent=True)
        return int(response.TTL)

    async def keepalive(self, lease_ids: Sequence[int]) -> dict[int, int]:
        """One round of keep-alives: id -> new TTL (<= 0: the lease is gone).

        Uses one persistent LeaseKeepAlive stream (opened on first use, reopened on the next
        endpoint when it breaks; a round that breaks is replayed, which is harmless). Rounds
        from concurrent tasks are serialized.
        """
        ids = list(dict.fromkeys(lease_ids))
        if not ids:
            return {}
        async with self._keepalive_lock:
            rounds: Rounds | None = None
            while True:
                index = self._current
                stream = self._keepalive_stream
                if stream is None or stream.closed:
                    stream = self._open_stream(index, "LeaseKeepAlive")
                    self._keepalive_stream = stream
                done = False
                try:
                    with trio.move_on_after(self.timeout):
                        result = await self._keepalive_round(stream, ids)
                        done = True
                        return result
                    last: Any = TimeoutError(f"no keep-alive answer within {self.timeout} s")
                except StreamEnded as end:
                    if end.closed:
                        self._check_open()
                    err = end.error
                    if err is not None and err.code() not in FAILOVER_CODES:
                        raise translate_rpc_error(err) from None
                    last = err or ConnectionError("keep-alive stream ended")
                finally:
                    if not done:  # broken, timed out or cancelled mid-round: start afresh
                        stream.close()
                        self._keepalive_stream = None
                self._failed(index)
                rounds = rounds or Rounds(len(self._endpoints), self.timeout)
                if not await rounds.failed():
                    raise self._unavailable(last)

    @staticmethod
    async def _keepalive_round(stream: Http2Stream, ids: list[int]) -> dict[int, int]:
        for lease_id in ids:
            stream.send(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        result: dict[int, int] = {}
        while len(result) < len(ids):
            response = await stream.receive()
            result[int(response.ID)] = int(response.TTL)
        return result

    # -- Watch ---------------------------------------------------------------------------------
    def watch(
        self,
        key: bytes,
        range_end: bytes | None,
        *,
        start_revision: int,
        prev_kv: bool = False,
        progress_notify: bool = False,
        keeps_reading: bool = False,
    ) -> Watch:
        """``async with client.watch(k, end, start_revision=r) as batches: async for b in ...``

        Entering waits until etcd has created the watch. Iterating yields ``WatchBatch``es in
        revision order, without gaps: a broken stream is re-established transparently (on the
        next endpoint, for up to ``reconnect_timeout`` s, else ``EtcdUnavailable``) from the
        revision after the last one delivered. ``CompactedError`` if that revision has been
        compacted. ``start_revision=0`` means "from now on".

        ``keeps_reading``: the caller promises to iterate for as long as the watch is open, so
        the watch's connection always has a reader for the answers of calls begun by
        :meth:`start_txn` (see :meth:`txn_has_reader`).
        """
        return Watch(
            self,
            key,
            range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
            keeps_reading=keeps_reading,
        )
