"""A resumption racing another resumption of its session, or its close, on two zetcds.

Two zetcds resuming one session at about the same moment, each for a connection of its own:
the resumption committed last wins, and the other connection is closed, as ZooKeeper closes a
session's older connection when another resumes it. A closeSession on the connection the
session moved away from ends it, whatever lease the resumption gave it. Two backends run in
the test's trio loop on one real etcd; each race is forced by acting on the second zetcd from
inside the first one's step."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.backends import twin_backends
from tests.servers import EtcdServer
from zetcd.emulation.backend import EtcdSession
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ConnectRequest, RequestHeader


class _Outbox:
    peer_host = "127.0.0.1"
    certificate = None
    heard = 0.0

    def __init__(self) -> None:
        self.closed = False

    def notify(self, event_type: int, path: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("where", ["other-zetcd", "same-zetcd"])
@pytest.mark.parametrize("timeout", [4000, 6000], ids=["same-timeout", "renegotiated"])
def test_a_resumption_overtaken_by_a_later_one_closes_its_connection(
    etcd: EtcdServer, timeout: int, where: str
) -> None:
    """With the timeout the session has, the first resumption claims the record; with another,
    it moves the record to a new lease. Either way a second resumption, on the other zetcd or
    on the same one, comes after that write and before the first has registered its
    connection: the second connection holds the session, its lease renewed."""

    async def main() -> None:
        async with twin_backends(etcd) as (_, a, _, b):
            made = await a.connect(ConnectRequest(0, 0, 4000, 0, bytes(16), None), _Outbox())
            assert isinstance(made.session, EtcdSession) and made.response is not None
            sid, passwd = made.response.sessionId, made.response.passwd
            await made.session.detach()  # its client went away
            await b.mirror.catch_up()
            late = _Outbox()
            step = "claim" if timeout == 4000 else "move"
            write = getattr(a.store, step)
            later: list[Any] = []

            async def overtaken(*args: Any, **kwargs: Any) -> Any:
                setattr(a.store, step, write)  # the second resumption's own write is plain
                result = await write(*args, **kwargs)
                request = ConnectRequest(0, 0, 4000, sid, passwd, None)
                second = b if where == "other-zetcd" else a
                later.append(await second.connect(request, late))
                await a.mirror.catch_up()
                return result

            setattr(a.store, step, overtaken)
            first = _Outbox()
            with trio.fail_after(20):
                accepted = await a.connect(ConnectRequest(0, 0, timeout, sid, passwd, None), first)
            assert accepted.session is not None  # both resumptions were accepted
            assert later and later[0].session is not None
            # the older connection is closed; the newer one holds the session, renewed
            assert first.closed
            assert not late.closed
            holder = b if where == "other-zetcd" else a
            newer = later[0].session
            assert holder.local.get(sid) is newer
            assert b.mirror.tree.sessions[sid].value.owner == newer.owner
            assert newer.lease in holder.keeper.attached
            if where == "other-zetcd":
                assert sid not in a.local

    trio.run(main)


def test_a_close_from_the_old_connection_revokes_the_lease_a_resumption_gave(
    etcd: EtcdServer,
) -> None:
    """The session is resumed on the second zetcd with a new timeout (a new lease), and its
    old connection on the first zetcd sends closeSession before that zetcd's mirror has the
    new record. The close ends the session as on ZooKeeper, and the lease revoked is the one
    the deleted record held: the new one, not the old one the first zetcd last saw (which the
    move has revoked already; the new lease would have lived on until its TTL ran out)."""

    async def main() -> None:
        async with twin_backends(etcd) as (client, a, _, b):
            made = await a.connect(ConnectRequest(0, 0, 4000, 0, bytes(16), None), _Outbox())
            assert isinstance(made.session, EtcdSession) and made.response is not None
            sid, passwd = made.response.sessionId, made.response.passwd
            await b.mirror.catch_up()
            submit = a.batcher.submit
            moved: list[int] = []

            async def resumed_first(apply: Any, exclusive: bool = False) -> Any:
                if not moved:  # before the close's transaction is planned
                    request = ConnectRequest(0, 0, 6000, sid, passwd, None)
                    again = await b.connect(request, _Outbox())
                    assert again.response is not None and again.response.timeOut == 6000
                    moved.append(b.local[sid].lease)
                return await submit(apply, exclusive)

            a.batcher.submit = resumed_first  # type: ignore[method-assign]
            with trio.fail_after(20):
                reply = await made.session.handle(RequestHeader(1, OpCode.CLOSE_SESSION), None)
            assert (reply.err, reply.close) == (0, True)
            assert moved and moved[0] != sid, "the resumption kept the session's first lease"
            assert await client.lease_ttl(moved[0]) == -1, "the new lease outlived the session"
            assert await client.lease_ttl(sid) == -1
            await b.mirror.catch_up()
            assert sid not in b.mirror.tree.sessions

    trio.run(main)
