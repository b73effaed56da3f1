"""The etcd emulation backend: ZooKeeper sessions and requests served from the mirror and etcd."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from zetcd.backend import Accepted, DropConnection, Outbox, Reply
from zetcd.emulation import plans
from zetcd.emulation.batcher import Batcher, Write
from zetcd.emulation.layout import CLOSING, Layout
from zetcd.emulation.layout import zxid as zxid_at
from zetcd.emulation.mirror import Mirror
from zetcd.emulation.reads import READS, auth_fails
from zetcd.emulation.sessions import (
    SessionKeeper,
    SessionLimits,
    SessionStore,
    lease_ttl,
    watch_session_ends,
)
from zetcd.emulation.tree import SessionEntry
from zetcd.etcd import (
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
)
from zetcd.proto.constants import PING_XID, Err, OpCode
from zetcd.proto.opcodes import MULTI_READ_OPS
from zetcd.proto.records import (
    ConnectRequest,
    ConnectResponse,
    MultiResponse,
    RequestHeader,
    SetSASLResponse,
    SyncResponse,
)

log = logging.getLogger(__name__)

EXPIRED_PASSWD = bytes(16)

# reads whose handling does more than read the mirror (auth may save the session record)
_READS_WITH_EFFECTS = frozenset((OpCode.AUTH,))


@dataclass(frozen=True, slots=True)
class Options:
    prefix: bytes = b"/zetcd/"
    limits: SessionLimits = field(default_factory=SessionLimits)
    ttl_enabled: bool = True
    # ZooKeeper's znode.container.checkIntervalMs: how often empty containers and expired
    # TTL nodes are looked for
    container_check_interval: int = 60000
    # ZooKeeper's zookeeper.DigestAuthenticationProvider.superDigest: "super:<base64 sha1>"; a
    # session that authenticates with a matching digest may do anything
    super_digest: str | None = None
    # etcd's --max-txn-ops: a transaction of grouped writes stays within it
    etcd_max_txn_ops: int = 128
    etcd_max_request_bytes: int = 1536 * 1024
    # ZooKeeper's x509 authentication provider is registered (it is once a secure client port
    # is configured): x509 ACL ids are valid when Java's X500Principal takes them
    x509: bool = False
    # ZooKeeper's zookeeper.X509AuthenticationProvider.superUser: the x509 id whose client
    # certificate makes a session a super user
    x509_superuser: str | None = None


CLEAN_UP_RETRY_MAX = 10.0  # seconds between two tries at an ended session's ephemerals


class EtcdBackend:
    def __init__(self, client: EtcdClient, options: Options = Options()) -> None:
        self.client = client
        self.options = options
        self.layout = Layout(options.prefix)
        self.mirror = Mirror(client, self.layout)
        self.keeper = SessionKeeper(client, options.limits.tick_time)
        self.store = SessionStore(client, self.mirror)
        self.local: dict[int, EtcdSession] = {}  # sessions attached to this process
        self.batcher = Batcher(
            client,
            self.mirror,
            max_txn_ops=options.etcd_max_txn_ops,
            max_request_bytes=options.etcd_max_request_bytes,
        )

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.mirror.run)
            nursery.start_soon(self.keeper.run)
            nursery.start_soon(self.batcher.run)
            nursery.start_soon(self._container_manager)
            watch_session_ends(
                self.mirror,
                nursery,
                self._session_ended,
                self._clean_up,
                self._session_claimed,
                self._abandoned_close,
            )
            self.mirror.reload_listeners.append(self._drop_every_connection)
            task_status.started()

    async def caught_up(self) -> None:
        """Return once the mirror has applied every write already answered (a reply may leave
        first: Batcher); the four-letter words, answered from the mirror, wait for this."""
        await self.mirror.caught_up()

    def _drop_every_connection(self) -> None:
        """The mirror is about to be rebuilt: every client reconnects, as from a ZooKeeper
        follower that resyncs, and resumes its session (its watches replayed by setWatches)."""
        for session in list(self.local.values()):
            session.expired()  # closes the connection; its end renews the lease once more

    # ------------------------------------------------------------------ sessions
    def _session_ended(self, session_id: int) -> None:
        s = self.local.pop(session_id, None)
        if s is not None:
            s.expired()

    def _session_claimed(self, session_id: int) -> None:
        """A session's record was rewritten: if another connection (on another zetcd) holds
        the session now, this process's is left as a ZooKeeper follower leaves the old
        connection of a session that moved to another server: open, with its watches, serving
        what needs no owner check, until it idles out (the outbox's ``moved_away``); a write
        on it closes it (``_unless_moved``). The session is no longer renewed or expired
        from here; it stays in ``local`` so that its end, or a move back here, closes the
        connection."""
        s = self.local.get(session_id)
        entry = self.mirror.tree.sessions.get(session_id)
        if s is None or s.moved or entry is None or entry.value.owner in (s.owner, CLOSING):
            return
        log.info("session 0x%x resumed elsewhere: its old connection here serves reads", session_id)
        s.moved = True
        self.keeper.forget(s.lease)
        moved_away = getattr(s.outbox, "moved_away", None)
        if moved_away is not None:
            moved_away()

    def _still_owner(self, session_id: int, owner: str) -> bool:
        """Does the session record (as the mirror has it) still name ``owner``'s connection?
        A resumption committed later on another connection, or the session's end, takes it
        over; one the mirror has not applied yet is handled by ``_session_claimed``."""
        entry = self.mirror.tree.sessions.get(session_id)
        return entry is not None and entry.value.owner == owner

    async def _expire(self, session_id: int, lease: int, owner: str) -> None:
        """Expire a session its client's timeout ran out on, as ZooKeeper's session tracker
        does: its ephemerals and its record go in one transaction (unless another connection
        resumed it meanwhile), then its lease. If etcd cannot be reached, the lease runs out
        on its own. Nothing is sent when the mirror shows the session ended (its clean-up is
        under way) or resumed on another connection: a transaction would spend a zxid for
        nothing."""
        entry = self.mirror.tree.sessions.get(session_id)
        if entry is None or entry.value.owner != owner:
            return
        try:
            _, err, held = await self.end_session(session_id, True, owner)
            if not err:
                await self.client.lease_revoke(lease if held is None else held)
        except (EtcdUnavailable, EtcdError) as e:
            log.warning("session 0x%x: its expiry is left to its lease: %s", session_id, e)
        except Exception:  # a bug: this task must not take the keeper (and the process) down
            log.exception("session 0x%x: its expiry failed; it is left to its lease", session_id)

    async def _abandoned_close(self, session_id: int, lease: int) -> None:
        """A session was half-way through its end (closeSession or expiry in several
        transactions) when the mirror (re)loaded: its closer may have died, so its lease is
        revoked; its ephemerals then go as an expired session's. A closer still at work meets
        no record and finishes all the same."""
        log.info(
            "session 0x%x was ending when the tree was loaded: its lease is revoked", session_id
        )
        try:
            await self.client.lease_revoke(lease)
        except (EtcdUnavailable, EtcdError) as e:
            log.warning("session 0x%x: its end is left to its lease: %s", session_id, e)

    def _orphaned(self, session_id: int) -> bool:
        """Does an ended session still own ephemerals?"""
        tree = self.mirror.tree
        return session_id in tree.ephemerals and session_id not in tree.sessions

    async def _clean_up(self, session_id: int) -> None:
        """Delete an ended session's ephemerals; while etcd is unavailable, try again (with
        a growing pause, up to CLEAN_UP_RETRY_MAX) for as long as they are there."""
        pause = 0.5
        while self._orphaned(session_id):
            try:
                await self.end_session(session_id, False)
                return
            except EtcdUnavailable:
                log.warning(
                    "etcd unavailable: the ephemerals of session 0x%x are deleted again in %.1f s",
                    session_id,
                    pause,
                )
            except EtcdError as e:
                log.error(
                    "etcd refused the deletion of session 0x%x's ephemerals: %s", session_id, e
                )
                return
            await trio.sleep(pause)
            pause = min(pause * 2, CLEAN_UP_RETRY_MAX)

    async def end_session(
        self, session_id: int, closing: bool, owner: str = ""
    ) -> tuple[int, int, int | None]:
        """Delete a session's ephemerals (and, ``closing``, its record, if it still names
        ``owner``'s connection): in one transaction, or in several when they are more than one
        etcd transaction takes. The last one's zxid; SESSION_MOVED (nothing deleted) if the
        session was resumed on another connection, else 0; and the lease of the record
        deleted (None if none was): the one to revoke, which a resumption with a new
        timeout may have changed since the caller last looked."""
        while True:
            zxid, err, resp = await self.batcher.submit(
                plans.end_session(session_id, closing, owner)
            )
            if err == Err.SESSION_MOVED:
                return zxid, err, None
            if resp is not plans.MORE_EPHEMERALS:
                break
            if closing:  # its record now says so: no one resumes it meanwhile
                owner = CLOSING
        if err:
            log.error(
                "the ephemerals of session 0x%x could not be deleted: an ephemeral takes more"
                " than etcd's --max-request-bytes to delete",
                session_id,
            )
            return zxid, 0, None
        return zxid, 0, resp if isinstance(resp, int) else None

    async def _container_manager(self) -> None:
        """Delete empty containers and expired TTL nodes, as ZooKeeper's ContainerManager.
        Every zetcd runs one; the deletes are guarded, so doing one twice is harmless."""
        while True:
            await trio.sleep(self.options.container_check_interval / 1000)
            # candidates from a tree with every write already answered (a TTL node just
            # touched is not one)
            await self.mirror.caught_up()
            now = int(time.time() * 1000)
            for path in plans.container_candidates(self.mirror.tree, now):
                try:
                    await self.batcher.submit(plans.delete_container(self._ctx(0), path))
                except EtcdUnavailable:
                    log.warning("etcd unavailable: container clean-up postponed")
                    break
                except EtcdError as e:
                    log.error("etcd refused the deletion of container %s: %s", path, e)

    def _ctx(
        self, session_id: int, auth: tuple[tuple[str, str], ...] = (), owner: str = ""
    ) -> plans.Ctx:
        return plans.Ctx(session_id, auth, self.options.ttl_enabled, owner, self.options.x509)

    async def _resume(self, sid: int, entry: SessionEntry, timeout: int, owner: str) -> int | None:
        """Make ``owner``'s connection the session's: its lease id, or None if the session
        expired meanwhile."""
        if timeout != entry.value.timeout:
            # a reconnect renegotiates the timeout; an etcd lease's TTL is fixed at grant
            return await self.store.move(sid, entry, timeout, owner)
        # renewed now (the lease may have little time left), so that a zetcd cut off from
        # etcd (whose mirror still holds the session) refuses the client; the claim tells a
        # zetcd still holding an old connection of it to close that
        if (await self.client.keepalive([entry.lease])).get(entry.lease, 0) <= 0:
            return None
        return entry.lease if await self.store.claim(sid, entry, owner) else None

    async def connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted:
        try:
            return await self._connect(request, outbox)
        except EtcdUnavailable:
            log.warning("etcd unavailable: refusing a connection")
            raise DropConnection() from None

    async def _connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted:
        mirror = self.mirror
        # the client has seen nothing the mirror lacks once the mirror's last zxid is at least
        # the client's (a zxid past it, even within that etcd revision's positions, is refused
        # as ZooKeeper refuses any zxid past its own)
        seen = request.lastZxidSeen
        if seen > mirror.last_zxid:
            await mirror.catch_up()
            if seen > mirror.last_zxid:
                log.info(
                    "refusing a client that has seen zxid 0x%x, ahead of 0x%x",
                    seen,
                    mirror.last_zxid,
                )
                return Accepted(None, None)
        timeout = self.options.limits.negotiate(request.timeOut)
        # a standalone server is never read-only: it answers False to a client that asked
        ro = None if request.readOnly is None else False
        owner = os.urandom(8).hex()
        # ``began``: the lease is granted or renewed no sooner (the keeper counts from it)
        if request.sessionId == 0:
            began = time.monotonic()
            sid, passwd = await self.store.create(timeout, owner)
            lease = sid
        else:
            sid = request.sessionId
            entry = mirror.tree.sessions.get(sid)
            if entry is None:
                await mirror.catch_up()
                entry = mirror.tree.sessions.get(sid)
            # ZooKeeper closes the session's current connection before it checks the password;
            # the session then runs out its timeout from when that one was last heard from
            old = self.local.pop(sid, None)
            if old is not None:
                old.expired()
                self.keeper.detach(old.lease)
            if (
                entry is None
                or entry.value.passwd != (request.passwd or b"")
                or entry.value.owner == CLOSING  # its end is under way: not renewed again
            ):
                return Accepted(ConnectResponse(0, 0, 0, EXPIRED_PASSWD, ro), None)
            passwd = entry.value.passwd
            # the session is being resumed: its expiry here (its last connection closed) waits
            pending = self.keeper.take_expiry(entry.lease)
            resumed = None
            began = time.monotonic()
            try:
                resumed = await self._resume(sid, entry, timeout, owner)
            finally:
                if resumed is None:
                    self.keeper.put_back_expiry(entry.lease, pending)
            if resumed is None:  # it expired meanwhile
                return Accepted(ConnectResponse(0, 0, 0, EXPIRED_PASSWD, ro), None)
            lease = resumed
        session = EtcdSession(self, sid, lease, passwd, timeout, outbox, ro)
        session.owner = owner
        if request.sessionId and not self._still_owner(sid, owner):
            # another connection resumed the session after this one did (here, or on another
            # zetcd whose resumption the mirror applied meanwhile), or the session is ending:
            # this connection is the older, and ZooKeeper closes the older. The newer one is
            # the session's here: it is left registered and its lease renewed
            log.info("session 0x%x resumed again meanwhile: closing the older connection", sid)
            session.connection_gone()
            outbox.close()  # closing: its ConnectResponse is not sent either
            return Accepted(session.connect_response, session)
        older = self.local.get(sid)
        if older is not None:
            # another resumption here finished first and its connection was taken for one the
            # session moved away from when this one's claim was applied (_session_claimed):
            # on one server ZooKeeper closes the older connection
            older.expired()
            self.keeper.forget(older.lease)
        self.local[sid] = session
        # as ZooKeeper touches a session when its connect completes, however long that took
        connected = time.monotonic()
        self.keeper.attach(
            lease,
            lease_ttl(timeout),
            session.expired,
            timeout=timeout,
            expire=functools.partial(self._expire, sid, lease, owner),
            heard=lambda: max(outbox.heard, connected),
            renewed=began,
        )
        created = mirror.tree.sessions.get(sid) if request.sessionId == 0 else None
        zxid = -1 if created is None else zxid_at(created.create_revision)
        return Accepted(session.connect_response, session, zxid)

    # ------------------------------------------------------------------ writes


class EtcdSession:
    def __init__(
        self,
        backend: EtcdBackend,
        session_id: int,
        lease: int,
        passwd: bytes,
        timeout: int,
        outbox: Outbox,
        read_only: bool | None = None,
    ) -> None:
        self.backend = backend
        self.mirror = backend.mirror
        self.session_id = session_id
        self.lease = lease  # the session id at first; a new lease when the timeout changes
        self.passwd = passwd
        self.timeout = timeout
        self.outbox = outbox
        self.owner = ""  # its token in the session record (SessionValue.owner)
        # what its connection is answered (``read_only``: the readOnly byte, None for none), and
        # again to a createSession sent inside the session
        self.connect_response = ConnectResponse(0, timeout, session_id, passwd, read_only)
        # the connection's auth ids in the order they were added: its ip, then its client
        # certificate's x509 id; as in ZooKeeper they belong to the connection: a resumed
        # session starts again from these two
        self.auth_ids: tuple[tuple[str, str], ...] = (("ip", outbox.peer_host),)
        if outbox.certificate is not None:
            self.add_x509(outbox.certificate.x509_id)
        self._ctx: plans.Ctx | None = None  # who this session is to its writes
        self.closed = False
        self.stale = False  # its connection is closed (connection_gone): it takes no watches
        self.moved = False  # resumed on another zetcd (EtcdBackend._session_claimed)
        self.deferred = 0  # requests begun and not yet answered
        self.queued_writes = 0  # of which writes already queued to the batcher

    def add_auth(self, ident: tuple[str, str]) -> None:
        if ident not in self.auth_ids:  # a set in ZooKeeper
            self.auth_ids = (*self.auth_ids, ident)
            self._ctx = None

    def add_x509(self, ident: str) -> None:
        """The client certificate's id, after a super id if it is the x509 super user's."""
        if ident == self.backend.options.x509_superuser:
            self.add_auth(("super", ident))
        self.add_auth(("x509", ident))

    # a session is the watcher of its watches
    def notify(self, event_type: int, path: str) -> None:
        self.outbox.notify(event_type, path)

    def expired(self) -> None:
        """The server ends this session's connection: the session expired, or ended or was
        resumed on another zetcd, or another connection claims it (ZooKeeper closes this one
        then, before it looks at the newcomer's password), or the mirror is rebuilt. ZooKeeper
        closes the connection there and then (NIOServerCnxn.close): the outbox's ``kick``, on
        the plain port what was not sent yet is dropped and the client reads the end of its
        stream at once; on the secure port what is queued goes first."""
        self.connection_gone()
        kick = getattr(self.outbox, "kick", None)
        if kick is not None:
            kick()
        else:
            self.outbox.close()

    def connection_gone(self) -> None:
        """Its connection is closed, by its client or by the server: its watches go at once
        (wchc, wchs) and it takes no more, as ZooKeeper drops them when it closes a connection,
        before the requests still in flight are answered."""
        self.stale = True
        self.mirror.watches.drop_watcher(self)

    async def detach(self) -> None:
        self.connection_gone()
        if self.backend.local.get(self.session_id) is self:
            del self.backend.local[self.session_id]
            if not self.closed and not self.moved:
                self.backend.keeper.detach(self.lease)

    async def malformed(self, xid: int, opcode: int) -> Reply:
        if opcode in (OpCode.AUTH, OpCode.SASL):  # ZooKeeper drops the connection, no reply
            raise DropConnection()
        await self.mirror.caught_up()
        # a write that does not decode still spends a zxid, as ZooKeeper decodes most writes
        # after it takes one; reconfig is decoded before (PrepRequestProcessor)
        if opcode != OpCode.RECONFIG and (
            opcode in plans.OPS or opcode in (OpCode.MULTI, OpCode.CREATE_SESSION)
        ):
            try:
                zxid, _, _ = await self.backend.batcher.submit(
                    plans.error_write(Err.MARSHALLING_ERROR)
                )
            except EtcdUnavailable:
                raise DropConnection() from None
            return Reply(xid, zxid, Err.MARSHALLING_ERROR)
        return Reply(xid, self.mirror.last_zxid, Err.MARSHALLING_ERROR)

    def _refused_multi(self, xid: int, body: Any) -> Awaitable[Reply] | None:
        """ZooKeeper's answer to a multi it fails before planning any op, or None."""
        # a null path anywhere wins over read ops: ZooKeeper's loop goes on past a read op
        # (which fails the multi) and throws at the null path, before the multi has a txn
        if _null_path_in_multi(body):
            return self._null_path_multi(xid)
        if _reads_in_multi(body):
            return self.malformed(xid, OpCode.MULTI)
        return None

    async def _null_path_multi(self, xid: int) -> Reply:
        await self.mirror.caught_up()  # its zxid is never below a write already answered
        return Reply(xid, self.mirror.last_zxid, Err.MARSHALLING_ERROR, MultiResponse(()))

    def ctx(self) -> plans.Ctx:
        ctx = self._ctx
        if ctx is None:
            ctx = self._ctx = self.backend._ctx(self.session_id, self.auth_ids, self.owner)
        return ctx

    def begin(
        self, header: RequestHeader, body: object | None
    ) -> Reply | Callable[[], Awaitable[Reply]]:
        """Serve what can be served now; defer the rest, keeping the session's order.

        A read is answered at once when nothing of this session is still in flight and the
        mirror has applied every write already answered (Batcher: a reply may leave first). A write
        (or multi) is queued to the batcher at once when everything in flight before it is a
        queued write too, so a pipelining client gets many writes per etcd transaction;
        anything else waits its turn and runs through ``handle`` in order.
        """
        op = header.type
        if (
            not self.deferred
            and op in READS
            and op not in _READS_WITH_EFFECTS
            and not self.mirror.behind
        ):
            err, resp = READS[op](self, body)
            return Reply(
                PING_XID if op == OpCode.PING else header.xid, self.mirror.last_zxid, err, resp
            )
        if op == OpCode.AUTH and auth_fails(self, body):
            # ZooKeeper's network thread answers a failed auth itself, at once, and closes the
            # connection: the server sends this ahead of the replies still owed (server.py)
            return Reply(header.xid, 0, Err.AUTH_FAILED, None, close=True)
        refused = self._refused_multi(header.xid, body) if op == OpCode.MULTI else None
        if refused is not None:
            return self._later(refused, queued=False)
        if self.deferred == self.queued_writes and (op in plans.OPS or op == OpCode.MULTI):
            batcher = self.backend.batcher
            if op == OpCode.MULTI:
                w = batcher.enqueue(
                    plans.Multi(self.ctx(), body.ops),  # type: ignore[union-attr]
                    True,
                    hold=True,
                    watcher=self,
                )
            else:
                w = batcher.enqueue(plans.write(self.ctx(), op, body), hold=True, watcher=self)
            self.queued_writes += 1
            self.deferred += 1
            return _QueuedWrite(self, header.xid, w)
        return self._later(self.handle(header, body), queued=False)

    def begin_malformed(self, xid: int, opcode: int) -> Callable[[], Awaitable[Reply]]:
        """``malformed``, deferred in the session's order as ``begin`` defers what it cannot
        serve at once: the requests after it wait their turn, so a pipelined read is not
        answered before its error transaction, nor a pipelined write committed before it."""
        return self._later(self.malformed(xid, opcode), queued=False)

    def end_of_input(self) -> None:
        """The requests of one receive are all begun: the writes they queued leave now if the
        batcher is idle, together, without waiting for the batcher's task. The server calls
        this before its reader awaits anything after ``begin``: until then, the writes
        ``begin`` queued may wait (they are queued with ``hold``)."""
        self.backend.batcher.send_queued()

    def _later(self, work: Awaitable[Reply], queued: bool) -> Callable[[], Awaitable[Reply]]:
        self.deferred += 1

        async def finish() -> Reply:
            try:
                reply: Reply = await work
                return reply
            finally:
                self.deferred -= 1
                if queued:
                    self.queued_writes -= 1

        return finish

    async def handle(self, header: RequestHeader, body: object | None) -> Reply:
        op = header.type
        xid = header.xid
        req: Any = body
        await self.mirror.caught_up()  # the writes already answered are in the tree
        read = READS.get(op)
        if read is not None:
            err, resp = read(self, body)
            if op == OpCode.PING:
                return Reply(PING_XID, self.mirror.last_zxid, 0)
            if op == OpCode.AUTH:
                # auth replies carry zxid 0; a failed auth ends the connection
                return Reply(xid, 0, err, None, close=err != 0)
            return Reply(xid, self.mirror.last_zxid, err, resp)
        b = self.backend
        try:
            if op in plans.OPS:
                zxid, err, resp = await b.batcher.submit(
                    plans.write(self.ctx(), op, body), watcher=self
                )
            elif op == OpCode.MULTI:
                refused = self._refused_multi(xid, body)
                if refused is not None:
                    return await refused
                ops = req.ops
                zxid, err, resp = await b.batcher.submit(
                    plans.Multi(self.ctx(), ops), exclusive=True, watcher=self
                )
            elif op == OpCode.SYNC:
                zxid = await self.mirror.catch_up()
                return Reply(xid, zxid, 0, _sync_response(body))
            elif op == OpCode.SASL:
                # a server without SASL configured answers a token with no token, zxid 0,
                # and drops a connection whose token is null (ZooKeeperServer.processSasl)
                if req.token is None:
                    raise DropConnection()
                return Reply(xid, 0, 0, SetSASLResponse(None))
            elif op == OpCode.CLOSE_SESSION:
                # detach first: the record's deletion must not read as an expiry of this session
                self.closed = True
                if b.local.get(self.session_id) is self:  # else another connection holds it
                    del b.local[self.session_id]
                    b.keeper.forget(self.lease)
                # no owner check, as on ZooKeeper: a connection the session moved away from
                # (resumed on another zetcd) closes it all the same, and the connection that
                # holds it now is closed by its zetcd when the record goes; the lease revoked
                # is the deleted record's (a resumption there may have moved it to a new one)
                zxid, _, held = await b.end_session(self.session_id, True)
                with contextlib.suppress(EtcdError):  # already gone with its session
                    await b.client.lease_revoke(self.lease if held is None else held)
                return Reply(xid, zxid, 0, None, close=True)
            elif op == OpCode.CREATE_SESSION:
                # ZooKeeper's answer to a createSession sent inside a session: the txn
                # changes nothing and spends a zxid; the session's expiry moves to now + the
                # timeout sent, until its client is next heard from (touched with no await
                # before the reply leaves, so that an expiry that soon cannot overtake it);
                # the session's ConnectResponse goes out again (a bare frame, server.py)
                zxid, _, _ = await b.batcher.submit(plans.spend_zxid())
                b.keeper.touch(self.lease, req.timeOut)
                return Reply(xid, zxid, 0, self.connect_response)
            else:
                return Reply(xid, -1, Err.UNIMPLEMENTED, None, close=True)
        except (EtcdUnavailable, EtcdError) as e:
            raise _dropped(e, self.session_id) from None
        return _unless_moved(Reply(xid, zxid, err, resp if err == 0 else None), self.session_id)


def _dropped(error: EtcdUnavailable | EtcdError, session_id: int) -> DropConnection:
    """What a session's connection gets when etcd failed its write: logged, then closed."""
    what = "unavailable" if isinstance(error, EtcdUnavailable) else "refused a write"
    log.warning("etcd %s (%s): closing the connection of session 0x%x", what, error, session_id)
    return DropConnection()


def _unless_moved(reply: Reply, session_id: int) -> Reply:
    """``reply``, unless it refuses a write as SessionMoved (the session is held by another
    connection, on another zetcd): ZooKeeper then sends no reply and closes the connection once
    what is queued before it has gone (FinalRequestProcessor: sendCloseSession), its error
    transaction having spent a zxid. So for a multi one of whose ops was refused so."""
    body = reply.body
    if reply.err == Err.SESSION_MOVED or (
        type(body) is MultiResponse
        and any(getattr(r, "err", 0) == Err.SESSION_MOVED for r in body.results)
    ):
        log.info("session 0x%x: a write on a connection it moved away from", session_id)
        raise DropConnection()
    return reply


def _null_path_in_multi(body: Any) -> bool:
    """An op with a null path throws in ZooKeeper's multi loop before the multi has a txn:
    MarshallingError, no zxid spent, and only the result list's end marker."""
    return any(getattr(op.request, "path", "") is None for op in body.ops)


def _reads_in_multi(body: Any) -> bool:
    """A multi (14) of read ops decodes (a mixed one does not), but ZooKeeper 3.8 still fails
    it as a MarshallingError, spending a zxid, like a request it cannot deserialize."""
    return any(op.type in MULTI_READ_OPS for op in body.ops)


class _QueuedWrite:
    """The reply of a write queued to the batcher by ``begin``. The server awaits it, or takes
    it from ``poll`` without a task switch once the write's transaction is mirrored (a batch's
    replies then leave together)."""

    __slots__ = ("session", "w", "xid")

    def __init__(self, session: EtcdSession, xid: int, w: Write) -> None:
        self.session = session
        self.xid = xid
        self.w = w

    def poll(self) -> Reply | None:
        return self._reply() if self.w.finished else None

    def when_ready(self, callback: Callable[[], None]) -> bool:
        """Have ``callback`` called once ``poll`` has the reply (from the task that finishes
        the write: the batcher's, the mirror's, or any task reading etcd's answer); False if
        it has it already."""
        if self.w.finished:
            return False
        self.w.on_finish = callback
        return True

    async def __call__(self) -> Reply:
        try:
            await self.w.wait()
        except BaseException:
            self._settle()
            raise
        return self._reply()

    def _settle(self) -> None:
        s = self.session
        s.deferred -= 1
        s.queued_writes -= 1

    def _reply(self) -> Reply:
        self._settle()
        w = self.w
        if w.error is not None:
            if isinstance(w.error, EtcdUnavailable):
                raise _dropped(w.error, self.session.session_id) from None
            raise w.error
        assert w.result is not None
        zxid, err, resp = w.result
        return _unless_moved(
            Reply(self.xid, zxid, err, resp if err == 0 else None), self.session.session_id
        )


def _sync_response(body: Any) -> SyncResponse:
    return SyncResponse(body.path)
