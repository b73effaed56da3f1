"""Two zetcds resuming one session at about the same moment, each for a connection of its
own: the resumption committed last wins, and the other connection is closed, as ZooKeeper
closes a session's older connection when another resumes it. Two backends run in the test's
trio loop on one real etcd; the race is forced by resuming on the second zetcd from inside the
first one's resumption, right after its own record write."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.backends import twin_backends
from tests.servers import EtcdServer
from zetcd.emulation.backend import EtcdSession
from zetcd.proto.records import ConnectRequest


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
