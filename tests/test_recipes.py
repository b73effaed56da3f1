"""kazoo's recipes, run against real ZooKeeper and against zetcd with the same assertions."""

from __future__ import annotations

import threading
import time

from kazoo.client import KazooClient
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.party import Party
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from tests.conftest import KazooClientFactory, Target


def _clients(factory: KazooClientFactory, target: Target, chroot: str, n: int) -> list[KazooClient]:
    return [factory(target.address, chroot) for _ in range(n)]


def test_lock_is_mutually_exclusive(
    target: Target, chroot: str, kazoo_client_factory: KazooClientFactory
) -> None:
    clients = _clients(kazoo_client_factory, target, chroot, 3)
    inside = 0
    peak = 0
    order: list[int] = []
    guard = threading.Lock()

    def worker(i: int, zk: KazooClient) -> None:
        nonlocal inside, peak
        for _ in range(3):
            with Lock(zk, "/lock", identifier=f"w{i}"):
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                    order.append(i)
                time.sleep(0.01)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker, args=(i, zk)) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert peak == 1
    assert sorted(order) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert clients[0].get_children("/lock") == []


def test_election_picks_one_leader_and_fails_over(
    target: Target, chroot: str, kazoo_client_factory: KazooClientFactory
) -> None:
    a, b = _clients(kazoo_client_factory, target, chroot, 2)
    leaders: list[str] = []
    a_leads = threading.Event()
    b_leads = threading.Event()
    release_a = threading.Event()

    def lead_a() -> None:
        leaders.append("a")
        a_leads.set()
        release_a.wait(30)

    ea = Election(a, "/election", "a")
    eb = Election(b, "/election", "b")
    ta = threading.Thread(target=ea.run, args=(lead_a,))
    ta.start()
    assert a_leads.wait(15)

    def lead_b() -> None:
        leaders.append("b")
        b_leads.set()

    tb = threading.Thread(target=eb.run, args=(lead_b,))
    tb.start()
    time.sleep(0.3)
    assert eb.contenders() == ["a", "b"]
    release_a.set()
    assert b_leads.wait(15)
    ta.join(15)
    tb.join(15)
    assert leaders == ["a", "b"]


def test_barriers(target: Target, chroot: str, kazoo_client_factory: KazooClientFactory) -> None:
    a, b = _clients(kazoo_client_factory, target, chroot, 2)
    barrier = Barrier(a, "/barrier")
    barrier.create()
    assert not Barrier(b, "/barrier").wait(0.2)
    passed = threading.Event()
    t = threading.Thread(target=lambda: Barrier(b, "/barrier").wait(15) and passed.set())
    t.start()
    barrier.remove()
    t.join(15)
    assert passed.is_set()

    entered: list[str] = []

    def party(zk: KazooClient, name: str) -> None:
        db = DoubleBarrier(zk, "/double", 2, identifier=name)
        db.enter()
        entered.append(name)
        db.leave()

    threads = [threading.Thread(target=party, args=(zk, n)) for zk, n in ((a, "a"), (b, "b"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(entered) == ["a", "b"]


def test_counter_is_atomic_across_clients(
    target: Target, chroot: str, kazoo_client_factory: KazooClientFactory
) -> None:
    clients = _clients(kazoo_client_factory, target, chroot, 3)

    def bump(zk: KazooClient) -> None:
        counter = Counter(zk, "/counter")
        for _ in range(10):
            counter += 1

    threads = [threading.Thread(target=bump, args=(zk,)) for zk in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(clients[0], "/counter").value == 30


def test_queues(target: Target, chroot: str, kazoo_client_factory: KazooClientFactory) -> None:
    a, b = _clients(kazoo_client_factory, target, chroot, 2)
    q = Queue(a, "/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=1)
    assert len(q) == 4
    qb = Queue(b, "/queue")
    assert [qb.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert qb.get() is None

    lq = LockingQueue(a, "/lqueue")
    lq.put_all([b"x", b"y"])
    lqb = LockingQueue(b, "/lqueue")
    assert lqb.get(5) == b"x"
    assert lqb.consume()
    assert lqb.get(5) == b"y"
    assert lqb.release()
    assert lq.get(5) == b"y"
    assert lq.consume()
    assert len(lq) == 0


def test_party(target: Target, chroot: str, kazoo_client_factory: KazooClientFactory) -> None:
    a, b = _clients(kazoo_client_factory, target, chroot, 2)
    pa = Party(a, "/party", "alice")
    pb = Party(b, "/party", "bob")
    pa.join()
    pb.join()
    assert sorted(pa) == ["alice", "bob"]
    assert len(pb) == 2
    pb.leave()
    assert list(pa) == ["alice"]


def test_data_and_children_watches(
    target: Target, chroot: str, kazoo_client_factory: KazooClientFactory
) -> None:
    a, b = _clients(kazoo_client_factory, target, chroot, 2)
    a.create("/watched", b"v0")
    seen: list[bytes | None] = []
    kids: list[list[str]] = []
    changed = threading.Condition()

    def on_data(data: bytes | None, stat: object) -> None:
        with changed:
            seen.append(data)
            changed.notify_all()

    def on_children(children: list[str]) -> None:
        with changed:
            kids.append(sorted(children))
            changed.notify_all()

    DataWatch(a, "/watched", on_data)
    ChildrenWatch(a, "/watched", on_children)
    b.set("/watched", b"v1")
    b.create("/watched/c1")
    b.set("/watched", b"v2")
    b.create("/watched/c2")
    b.delete("/watched/c1")
    with changed:
        assert changed.wait_for(lambda: seen[-1:] == [b"v2"] and kids[-1:] == [["c2"]], 15)
    assert seen[0] == b"v0"
    assert kids[0] == []
    assert seen == sorted(set(seen), key=seen.index)  # no event reported twice
