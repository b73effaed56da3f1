"""Group commit: the writes of many sessions in one etcd transaction (design.md, "Writes").

Theory of operation: every write (a request, a session's close, an expiry clean-up, a container
deletion) is an *apply* function that applies ZooKeeper's rules to a Scratch and returns how to
build its response, or raises OpError. One task commits: it takes the writes queued while the
previous transaction was in flight, applies them in order to ONE scratch, so each sees the ones
before it exactly as if ZooKeeper had serialized them, compiles the scratch into one guarded etcd
transaction, and commits it. Write i of a transaction at revision R gets zxid R << 8 | i. When a
guard fails (another zetcd wrote meanwhile), the mirror catches up and the same writes are
planned again. A multi commits alone: a failed multi must leave nothing behind.

Guards: a transaction is first guarded by the fence (layout.py: one compare, "no zetcd has
committed since the mirror's view") and its session-record compares (each client write pins its
session's record, a session's clean-up pins it gone: etcd deletes an expired session's record
without moving the fence), which hold whenever this zetcd is the only one writing. When the
fence fails, the same writes are planned again with per-key guards (each key the plan read is
pinned), and later transactions keep those for FENCE_BACKOFF seconds: with other zetcds
writing, per-key guards let writes to different nodes commit side by side. The compares the
fence saves are about a fifth of etcd's work on a batch of setData.

Replies are released once the mirror has applied the revision, so every session reads its own
write and every notification it triggered is queued before the reply; except when nothing can
be owed to the batch's sessions before their replies: then the replies leave as soon as etcd's
answer is in, and the mirror applies the revision after them. That is when every write of the
batch is a client request, and each of its sessions either has no watches, or the transaction
was fenced (so no other zetcd changed a znode since the tree it was planned on: its own changes
are all that is still to come) and none of its changes can reach that session's watches. The
mirror is then ``promise``d that revision: until it has applied it, every session's requests
wait for it (EtcdSession) and so does the next plan. A 1x1 write saves the decoding and applying
of the watch event on its way. (A writer that does not know the fence, such as an older zetcd,
defeats the fence's proof until the mirror sees it: as with the fence's guards, see above.)

When the batcher is idle, a connection's reader that has queued writes (with ``hold``: the
batcher's task is not woken for them) sends them itself once it has queued those of one receive
(``send_queued``): etcd has them one task switch sooner. When the transaction goes over the
mirror's watch connection, the mirror's task reads the answer too, and the batch lands
(``_land``) in whichever task has both the successful answer and the mirror at its revision,
without waking the batcher's task; an error, failed guards, the mirror failing or no task left
reading the answer wake it, and it takes the answer as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from zetcd.emulation import layout as L
from zetcd.emulation.clock import TxnClock
from zetcd.emulation.errors import OpError
from zetcd.emulation.mirror import Mirror
from zetcd.emulation.scratch import EtcdTxn, Scratch
from zetcd.emulation.watches import Watcher
from zetcd.etcd import EtcdClient, EtcdUnavailable, encode_guarded_txn
from zetcd.etcd.client import TxnStarted
from zetcd.proto.constants import Err

log = logging.getLogger(__name__)

Builder = Callable[[int], object]  # the commit's base zxid (revision << 8) -> response
Apply = Callable[[Scratch], Builder]  # raises OpError

MAX_BATCH = L.MAX_POSITIONS
ETCD_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
PER_WRITE = 16  # compares or operations one more write may add (a create: two nodes)
# etcd's default --max-request-bytes is 1.5 MiB (a larger request is refused); a transaction
# keeps 1 KiB of it for gRPC's framing. One write may carry 1 MiB of data, so a batch takes no
# more writes once it is within ONE_WRITE of the limit
ETCD_MAX_REQUEST_BYTES = 1536 * 1024
REQUEST_FRAMING = 1024
ONE_WRITE = 1100 * 1024


# guard failures (with the mirror caught up each time) after which a batch shrinks to its first
# write, and after which that write fails
SPLIT_AFTER = 8
GIVE_UP_AFTER = 64
# after the fence lost to another writer, per-key guards for this long (seconds)
FENCE_BACKOFF = 1.0


class GuardsKeepFailing(EtcdUnavailable):
    """A write could not be committed: its session's connection is dropped, as when etcd is
    unavailable, and the client retries."""


class Write:
    """One queued write. Its Event is made only if someone waits before it is finished (most
    replies of a batch are taken once the batch is done, without waiting)."""

    __slots__ = (
        "_event",
        "apply",
        "error",
        "exclusive",
        "finished",
        "on_finish",
        "result",
        "watcher",
    )

    def __init__(
        self, apply: Apply, exclusive: bool = False, watcher: Watcher | None = None
    ) -> None:
        self.apply = apply
        self.exclusive = exclusive
        # the session whose client request it is: its reply may leave before the mirror has
        # applied it while that session has no watches (None: it waits for the mirror)
        self.watcher = watcher
        self.finished = False
        self.result: tuple[int, int, object] | None = None  # (zxid, err, response)
        self.error: BaseException | None = None
        self._event: trio.Event | None = None
        self.on_finish: Callable[[], None] | None = None  # called once it is finished

    def finish(self) -> None:
        on_finish = self.settle()
        if on_finish is not None:
            on_finish()

    def settle(self) -> Callable[[], None] | None:
        """Mark it finished and wake a task waiting for it; return ``on_finish`` for the caller
        to call (a batch calls each distinct one once, after settling all its writes)."""
        self.finished = True
        if self._event is not None:
            self._event.set()
        return self.on_finish

    async def wait(self) -> None:
        if self.finished:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()


class _Flight:
    """A batch planned and sent by ``send_queued``, not finished yet."""

    __slots__ = ("batch", "behind_since", "fenced", "planned", "started", "txn")

    def __init__(
        self,
        batch: list[Write],
        fenced: bool,
        txn: EtcdTxn,
        planned: list[tuple[int, Builder | None]],
        started: TxnStarted,
    ) -> None:
        self.batch = batch
        self.fenced = fenced
        self.txn = txn
        self.planned = planned
        self.started = started
        self.behind_since: float | None = None  # its answer came before the mirror's revision


def encode(txn: EtcdTxn) -> bytes:
    """The serialized etcd TxnRequest."""
    return encode_guarded_txn(txn.mods, txn.creates, txn.ops, txn.time_bound)


class Batcher:
    def __init__(
        self,
        client: EtcdClient,
        mirror: Mirror,
        max_batch: int = MAX_BATCH,
        max_txn_ops: int = ETCD_MAX_TXN_OPS,
        max_request_bytes: int = ETCD_MAX_REQUEST_BYTES,
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.max_batch = max_batch
        self.max_txn_ops = max_txn_ops
        self.max_txn_bytes = max_request_bytes - REQUEST_FRAMING  # what one write may take
        # a batch takes no more writes past this: the size etcd's default allows, whatever the
        # cluster's limit (a larger one is for single large writes, not larger batches)
        self.batch_bytes = ETCD_MAX_REQUEST_BYTES - REQUEST_FRAMING - ONE_WRITE
        self.queue: list[Write] = []
        self._wake = trio.Event()
        self.on_mirror_lag: Callable[[float], None] | None = None
        self.on_batch: Callable[[int], None] | None = None  # metrics: writes per transaction
        self.use_fence = True  # False: per-key guards always
        self.clock = TxnClock()  # the time of the transactions planned
        self._committed = 0  # the revision of the last transaction this batcher committed
        self._fence_off_until = 0.0  # trio time until which the fence is not used
        self._unfenced_told = False
        self._parked = False  # run() waits for work, and no one has woken it yet
        self._flight: _Flight | None = None  # sent by send_queued, not finished yet
        self._park: trio.CancelScope | None = None  # around run()'s wait for work
        mirror.batch_listeners.append(self._answer_in_place)

    def enqueue(
        self,
        apply: Apply,
        exclusive: bool = False,
        hold: bool = False,
        watcher: Watcher | None = None,
    ) -> Write:
        """Queue a write now (so writes commit in the order they were queued). With ``hold``,
        the caller promises to call :meth:`send_queued` before it next awaits anything; until
        then the batcher's task is not woken for it. ``watcher``: the session whose request
        it is, whose reply needs no mirror while it has no watches (see above)."""
        w = Write(apply, exclusive, watcher)
        self.queue.append(w)
        if not hold:
            self._rouse()
        return w

    def _rouse(self) -> None:
        """Wake the batcher's task if it waits for work."""
        if self._parked:
            self._parked = False
            self._wake.set()

    def send_queued(self) -> None:
        """If the batcher's task waits for work, plan and send what is queued now, from the
        caller's task (a connection's reader, once it has queued the writes of one receive),
        so that etcd has it one task switch sooner. The answer is usually read by the
        mirror's task, which finishes the batch in place (``_land``) without waking the
        batcher's task; an error, failed guards or no watch reading that connection wake it.
        If the batch cannot go at once (too big for one HTTP/2 frame, the connection busy or
        down), the batcher's task plans it as usual."""
        if not self.queue or not self._parked or self._flight is not None:
            return  # the busy task, or the landing of the batch in flight, takes the queue
        if self.mirror.behind:  # the last batch answered early: the task plans once it is in
            self._rouse()
            return
        batch = self._take()
        fenced = self._fence_usable()
        try:
            txn, planned = self.plan(batch, fenced)
            if not batch:  # every write failed as it was planned: nothing to send
                if self.queue:
                    self._rouse()
                return
            started = self.client.start_txn(encode(txn), self._flight_news)
        except Exception:  # a bug: the batcher's own attempt fails these writes
            log.exception("sending %d writes at once failed", len(batch))
            started = None
        if started is None:
            self.queue[:0] = batch
            self._rouse()  # one try: the task plans it, and what is queued after it
            return
        self._flight = _Flight(batch, fenced, txn, planned, started)
        park = self._park
        if park is not None and park.deadline > started.deadline:
            # unless it has landed by its deadline, the task takes it. A deadline set for an
            # earlier flight is sooner and stays (moving it costs more than the rest of this
            # function): when it passes, the task takes whichever flight is then in the air,
            # as it would at that one's deadline, and parks afresh
            park.deadline = started.deadline
        if not self.client.txn_has_reader(started):
            self._rouse()  # no watch reads that connection: the task awaits the answer

    @staticmethod
    async def outcome(w: Write) -> tuple[int, int, object]:
        """(zxid, err, response) once the write is committed and mirrored."""
        await w.wait()
        if w.error is not None:
            raise w.error
        assert w.result is not None
        return w.result

    async def submit(
        self, apply: Apply, exclusive: bool = False, watcher: Watcher | None = None
    ) -> tuple[int, int, object]:
        return await self.outcome(self.enqueue(apply, exclusive, watcher=watcher))

    def _take(self) -> list[Write]:
        q = self.queue
        if q[0].exclusive:
            return [q.pop(0)]
        n = 0
        while n < len(q) and n < self.max_batch and not q[n].exclusive:
            n += 1
        batch = q[:n]
        del q[:n]
        return batch

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            flight, self._flight = self._flight, None
            if flight is not None:  # in flight as this task was cancelled
                self.client.abandon_txn(flight.started)

    async def _run(self) -> None:
        while True:
            flight = self._flight
            if flight is not None:  # sent by send_queued: this task takes the answer
                batch = flight.batch
            elif self.queue:
                batch = self._take()
            else:
                self._parked = True
                # send_queued sets the deadline of the answer of a batch it leaves in flight
                # (or keeps an earlier flight's): when it passes, this task takes the flight
                # then in the air; finish_txn fails it if etcd has not answered by its own
                # deadline, as it would a batch this task sent itself
                with trio.CancelScope() as self._park:
                    try:
                        await self._wake.wait()
                    finally:
                        self._parked = False
                        self._park = None
                self._wake = trio.Event()
                continue
            try:
                await self._commit(batch, flight)
            except Exception as e:  # etcd unavailable, or a bug: fail these writes only
                log.debug("a batch of %d writes failed: %r", len(batch), e)
                self._fail(batch, e)

    @staticmethod
    def _fail(batch: list[Write], error: BaseException) -> None:
        for w in batch:
            if not w.finished:
                w.error = error
                w.finish()

    def _answer_in_place(self) -> None:
        """The mirror has applied a watch response (or failed)."""
        flight = self._flight
        if flight is not None:
            self._land(flight, notified=False)

    def _flight_news(self) -> None:
        """The batch in flight's call is over, or no task is left to read its answer."""
        flight = self._flight
        if flight is not None:
            self._land(flight, notified=True)

    def _land(self, flight: _Flight, notified: bool) -> None:
        """Finish the batch in flight here, in whichever task has just read its answer or
        applied its revision, once both are in (the answer a success, the mirror at its
        revision). Anything else (an error, failed guards, no task reading its answer, the
        mirror gone) is left to the batcher's task, woken for it."""
        try:
            resp = self.client.txn_answered(flight.started)
            if self.mirror.failed is None:
                if resp is None:
                    if not notified:
                        return  # the answer is still to come
                elif resp.succeeded:
                    revision = resp.header.revision
                    if not self._settles_now(flight.batch, flight.txn, flight.fenced, revision):
                        if flight.behind_since is None:
                            flight.behind_since = trio.current_time()
                        return  # the mirror lands it once it has applied the revision
                    self._flight = None
                    if flight.behind_since is not None and self.on_mirror_lag is not None:
                        self.on_mirror_lag(trio.current_time() - flight.behind_since)
                    self._settle(flight.batch, flight.planned, revision)
                    if self.queue:
                        self._rouse()
                    return
        except Exception as e:  # a bug: fail these writes only, never the caller's task
            log.exception("finishing a batch of %d writes failed", len(flight.batch))
            if self._flight is not flight:  # past the point of no return: fail them here
                self._fail(flight.batch, e)
        # the batcher's task deals with the flight, or takes what is queued after it
        self._rouse()

    def _settles_now(self, batch: list[Write], txn: EtcdTxn, fenced: bool, revision: int) -> bool:
        """May a batch committed at ``revision`` be settled now? When the mirror has applied
        it, or nothing can be owed to its sessions first: the mirror is then promised it."""
        mirror = self.mirror
        if revision <= mirror.revision:
            return True
        if not self._owes_nothing(batch, txn, fenced):
            return False
        mirror.promise(revision)
        return True

    def _owes_nothing(self, batch: list[Write], txn: EtcdTxn, fenced: bool) -> bool:
        """May a committed batch's replies leave before the mirror has applied it? When no
        notification can be owed to its sessions first (see above); their next requests
        then wait for the mirror (``promise``)."""
        watches = self.mirror.watches
        watchers = []
        for w in batch:
            if w.watcher is None:
                return False
            if watches.watching(w.watcher):
                watchers.append(w.watcher)
        return not watchers or (fenced and not watches.may_notify(txn.changes, watchers))

    def _fence_usable(self) -> bool:
        if not self.use_fence:
            return False
        tree = self.mirror.tree
        if tree.unfenced:
            if not self._unfenced_told:
                self._unfenced_told = True
                log.warning(
                    "revision %d changed znodes without putting the fence key: a writer that"
                    " does not know it (an older zetcd?) shares the prefix; every transaction"
                    " is guarded key by key from now on",
                    tree.unfenced,
                )
            return False
        return trio.current_time() >= self._fence_off_until

    def plan(
        self, batch: list[Write], fenced: bool = False
    ) -> tuple[EtcdTxn, list[tuple[int, Builder | None]]]:
        """Apply the writes in order to one scratch; compile one transaction, guarded by the
        fence if ``fenced``, else by per-key compares.

        Stops early, leaving ``batch`` holding only the writes planned, when one more write
        could take the transaction past etcd's limits (operations per transaction, request
        bytes); the rest go back to the front of the queue. A write that alone takes it past
        them (a multi of too many ops) cannot be committed: it fails with BadArguments (a
        multi as a failed multi: ``Multi.refused``)."""
        tree = self.mirror.tree
        now, bounded = self.clock.plan(tree.fence_time, tree.fence != self._committed)
        sc = Scratch(tree, now)
        planned: list[tuple[int, Builder | None]] = []
        limit = self.max_txn_ops - PER_WRITE
        sc.limits = (limit, self.batch_bytes, fenced)
        watches = self.mirror.watches
        watching: list[Watcher] = []  # the sessions with watches among the writes planned so far
        for i, w in enumerate(batch):
            sc.pos = i
            logged = len(sc.log)
            try:
                planned.append((0, w.apply(sc)))
            except OpError as e:  # the position still spends its zxid
                planned.append((e.code, None))
            except Exception as e:  # a bug in this write's plan: it fails alone
                log.exception("planning a write failed")
                del batch[i]
                self._fail([w], e)
                return self.plan(batch, fenced)  # on a fresh scratch, without it (the
                # callers send nothing if that leaves the batch empty)
            if watching and watches.may_notify(sc.log[logged:], watching):
                # ZooKeeper sends a session the events of a write after the replies to its
                # writes before it; in one transaction they would all come first (the mirror
                # fires a revision's events before its writes are answered): this write, which
                # may notify a session with a write before it here, goes in the next one
                self.queue[:0] = batch[i:]
                del batch[i:]
                return self.plan(batch, fenced)
            if w.watcher is not None and w.watcher not in watching and watches.watching(w.watcher):
                watching.append(w.watcher)
            count, size = sc.measure(limit, self.batch_bytes, fenced)
            if count > self.max_txn_ops or size > self.max_txn_bytes:
                if i:  # the writes before it fit: they go alone, it goes first next time
                    self.queue[:0] = batch[i:]
                    del batch[i:]
                    return self.plan(batch, fenced)
                self.queue[:0] = batch[1:]
                del batch[1:]
                log.warning(
                    "a write needs more than etcd's --max-txn-ops (%d) operations or"
                    " --max-request-bytes in one transaction: refused with BadArguments"
                    " (raise them, and zetcd's --etcd-max-txn-ops, --etcd-max-request-bytes)",
                    self.max_txn_ops,
                )
                sc = Scratch(tree, now)
                # a multi fails as a multi does (per-op results), any other write in its header
                refused = getattr(w.apply, "refused", None)
                planned = [(0, refused()) if refused else (Err.BAD_ARGUMENTS, None)]
                break
            if (count > limit or size > self.batch_bytes) and i + 1 < len(batch):
                self.queue[:0] = batch[i + 1 :]  # one more write could take it past the limits
                del batch[i + 1 :]
                break
        txn = sc.compile(with_log=len(batch) > 1 or sc.needs_log, positions=len(batch))
        txn.changes = sc.log
        if fenced:
            # the fence replaces the per-key compares, except a session record's: its deletion
            # by lease expiry does not move the fence
            session = tree.layout.session
            kept = {session(sid): revision for sid, revision in txn.sessions.items()}
            txn.mods = {tree.layout.fence: tree.fence, **kept}
            txn.creates = {}
        else:
            # no other zetcd's transaction with a later time may commit first (layout.py,
            # clock.py)
            if not tree.fence:
                txn.mods.setdefault(tree.layout.fence, 0)
            elif bounded:
                txn.time_bound = (tree.layout.fence, L.encode_fence(sc.now + 1))
        return txn, planned

    def _sessions_changed(self, txn: EtcdTxn) -> bool:
        """Does the (caught-up) mirror fail one of a fenced transaction's session-record
        compares?"""
        sessions = self.mirror.tree.sessions
        for session_id, revision in txn.sessions.items():
            entry = sessions.get(session_id)
            if (entry.mod_revision if entry else 0) != revision:
                return True
        return False

    async def _commit(self, batch: list[Write], flight: _Flight | None = None) -> None:
        mirror = self.mirror
        if flight is None:
            await mirror.caught_up()  # plan on a tree with the batches answered early
        failures = 0
        fenced = self._fence_usable() if flight is None else flight.fenced
        while True:
            if flight is not None:  # planned and sent by send_queued
                txn, planned = flight.txn, flight.planned
                try:
                    resp = await self.client.finish_txn(flight.started)
                finally:
                    landed = self._flight is not flight  # by _land, meanwhile
                    self._flight = None
                if landed:
                    return
                flight = None
            else:
                txn, planned = self.plan(batch, fenced)
                if not batch:  # every write failed as it was planned: nothing to send
                    return
                resp = await self.client.txn_encoded(encode(txn))
            revision = resp.header.revision
            if resp.succeeded and self._settles_now(batch, txn, fenced, revision):
                break
            if self.on_mirror_lag is None or mirror.revision >= revision:
                await mirror.wait_for(revision)
            else:
                started = trio.current_time()
                await mirror.wait_for(revision)
                self.on_mirror_lag(trio.current_time() - started)
            if resp.succeeded:
                break
            if fenced and not self._sessions_changed(txn):
                # another writer moved the fence: plan again, key by key, on the caught-up
                # mirror (when a session record's compare failed instead, a session expired
                # meanwhile: the next plan, still fenced, refuses its writes)
                fenced = False
                self._fence_off_until = trio.current_time() + FENCE_BACKOFF
                continue
            # the mirror has caught up, so the next plan sees what beat this one; a plan that
            # keeps failing is either losing to other zetcds every time or, if its guards do
            # not match the mirror, a bug: commit the first write alone, then give up on it
            failures += 1
            if failures == SPLIT_AFTER and len(batch) > 1:
                self.queue[:0] = batch[1:]
                del batch[1:]
            elif failures >= GIVE_UP_AFTER:
                log.error(
                    "a write failed its guards %d times with the mirror caught up: giving up"
                    " (compares %r, fence value below %r)",
                    failures,
                    txn.compares(),
                    txn.time_bound,
                )
                raise GuardsKeepFailing(
                    f"a write failed its etcd guards {failures} times", indeterminate=False
                )
        self._settle(batch, planned, revision)

    def _settle(
        self, batch: list[Write], planned: list[tuple[int, Builder | None]], revision: int
    ) -> None:
        """A batch committed at ``revision`` (and mirrored): its writes' results, in order."""
        self._committed = revision
        if self.on_batch is not None:
            self.on_batch(len(batch))
        base = L.zxid(revision)
        callbacks: dict[Callable[[], None], None] = {}  # distinct, in order
        for i, (w, (err, build)) in enumerate(zip(batch, planned, strict=True)):
            w.result = (base | i, err, build(base) if build is not None else None)
            on_finish = w.settle()
            if on_finish is not None:
                callbacks[on_finish] = None
        for on_finish in callbacks:
            on_finish()
