"""The batcher (zetcd/emulation/batcher.py) on a real etcd, driven in-process: a write whose
guards can never pass must not take the writes batched with it down, nor retry for ever."""

from __future__ import annotations

import uuid

import pytest
import trio

from tests.servers import EtcdServer
from zetcd.emulation import plans
from zetcd.emulation.backend import EtcdBackend, Options
from zetcd.emulation.batcher import GIVE_UP_AFTER, GuardsKeepFailing
from zetcd.etcd import EtcdClient, EtcdUnavailable
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ACL, CreateRequest, Id, SetDataRequest

OPEN = (ACL(31, Id("world", "anyone")),)


def _ctx() -> plans.Ctx:
    return plans.Ctx(0)


def test_a_write_whose_guards_never_pass_fails_alone(etcd: EtcdServer) -> None:
    async def main() -> None:
        prefix = f"/zetcd-batcher-{uuid.uuid4().hex[:8]}/".encode()
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            backend = EtcdBackend(client, Options(prefix=prefix))
            async with trio.open_nursery() as nursery:
                await nursery.start(backend.run)
                batcher = backend.batcher
                for path in ("/bad", "/good"):
                    _, err, _ = await batcher.submit(
                        plans.write(_ctx(), OpCode.CREATE, CreateRequest(path, b"", OPEN, 0))
                    )
                    assert err == 0
                # the mirror now believes /bad's data key was last written at revision 1, so
                # every plan touching it carries a compare etcd will refuse
                backend.mirror.tree.nodes["/bad"].d_mod = 1
                bad = batcher.enqueue(
                    plans.write(_ctx(), OpCode.SET_DATA, SetDataRequest("/bad", b"x", 0))
                )
                good = batcher.enqueue(
                    plans.write(_ctx(), OpCode.SET_DATA, SetDataRequest("/good", b"y", 0))
                )
                with pytest.raises(GuardsKeepFailing) as failed:
                    await batcher.outcome(bad)
                _, err, _ = await batcher.outcome(good)  # split off, it committed on its own
                assert err == 0
                assert isinstance(failed.value, EtcdUnavailable)  # the connection is dropped
                assert backend.mirror.tree.nodes["/good"].data == b"y"
                assert backend.mirror.tree.nodes["/bad"].data == b""
                # the batcher still serves writes
                _, err, _ = await batcher.submit(
                    plans.write(_ctx(), OpCode.CREATE, CreateRequest("/after", b"", OPEN, 0))
                )
                assert err == 0
                nursery.cancel_scope.cancel()

    assert GIVE_UP_AFTER > 8
    trio.run(main)


@pytest.mark.parametrize("children_before", [0, 3])
def test_a_set_data_stat_counts_a_child_another_zetcd_made_meanwhile(
    etcd: EtcdServer, children_before: int
) -> None:
    """setData's reply carries the node's numChildren, cversion and pzxid, so its plan pins the
    node's children key (and through it the adjust key, see Scratch.guard_children): a child
    another zetcd creates between the plan and the commit makes the commit fail and replan."""

    async def main() -> None:
        prefix = f"/zetcd-batcher-{uuid.uuid4().hex[:8]}/".encode()
        async with (
            await EtcdClient.connect([etcd.endpoint]) as client_a,
            await EtcdClient.connect([etcd.endpoint]) as client_b,
        ):
            a = EtcdBackend(client_a, Options(prefix=prefix))
            b = EtcdBackend(client_b, Options(prefix=prefix))
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                await nursery.start(b.run)

                def create(path: str) -> plans.Apply:
                    return plans.write(_ctx(), OpCode.CREATE, CreateRequest(path, b"", OPEN, 0))

                await a.batcher.submit(create("/p"))
                # several children in one transaction: /p gets its children and adjust keys
                writes = [a.batcher.enqueue(create(f"/p/old{i}")) for i in range(children_before)]
                for w in writes:
                    await a.batcher.outcome(w)
                await b.mirror.catch_up()
                sent = []
                txn_encoded = client_a.txn_encoded

                async def meanwhile(request: bytes) -> object:
                    if not sent:  # the first try of the setData: B creates a child first
                        sent.append(request)
                        _, err, _ = await b.batcher.submit(create("/p/new"))
                        assert err == 0
                    return await txn_encoded(request)

                client_a.txn_encoded = meanwhile  # type: ignore[method-assign]
                zxid, err, resp = await a.batcher.submit(
                    plans.write(_ctx(), OpCode.SET_DATA, SetDataRequest("/p", b"v", -1))
                )
                client_a.txn_encoded = txn_encoded  # type: ignore[method-assign]
                assert err == 0 and sent
                stat = resp.stat  # type: ignore[attr-defined]
                node = a.mirror.tree.nodes["/p"]
                assert stat.numChildren == children_before + 1
                assert stat.cversion == children_before + 1 == node.cversion
                assert stat.pzxid == node.pzxid == a.mirror.tree.nodes["/p/new"].czxid
                assert stat.mzxid == zxid and stat.version == 1
                nursery.cancel_scope.cancel()

    trio.run(main)
