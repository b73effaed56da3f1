"""Many sessions writing at once (so zetcd commits many writes per etcd transaction): the
invariants ZooKeeper guarantees must hold on both servers."""

from __future__ import annotations

import threading
import uuid

from tests.conftest import Target
from tests.rawclient import RawClient
from zetcd.proto.constants import EventType, OpCode
from zetcd.proto.records import (
    ACL,
    AddWatchRequest,
    CreateRequest,
    ExistsRequest,
    GetChildrenRequest,
    Id,
    SetDataRequest,
    SyncRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)
SESSIONS = 12
EACH = 25


def test_concurrent_writers(target: Target) -> None:
    root = f"/conc-{uuid.uuid4().hex[:8]}"
    setup = RawClient(target.address)
    setup.connect()
    assert setup.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.err == 0
    watcher = RawClient(target.address)
    watcher.connect()
    assert watcher.call(OpCode.ADD_WATCH, AddWatchRequest(root, 1)).header.err == 0

    results: list[list[tuple[int, int, str | None]]] = [[] for _ in range(SESSIONS)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            c = RawClient(target.address, timeout=30)
            c.connect()
            for _ in range(EACH):
                r = c.call(OpCode.CREATE, CreateRequest(root + "/n-", b"x", OPEN, 2))
                results[i].append((r.header.err, r.header.zxid, r.body.path if r.body else None))
                s = c.call(OpCode.SET_DATA, SetDataRequest(root, b"%d" % i, -1))
                results[i].append((s.header.err, s.header.zxid, None))
            c.close()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    flat = [r for rs in results for r in rs]
    assert all(err == 0 for err, _, _ in flat)
    zxids = [z for _, z, _ in flat]
    assert len(set(zxids)) == len(zxids), "every write has its own zxid"
    for rs in results:  # each session sees its own zxids increase
        assert [z for _, z, _ in rs] == sorted(z for _, z, _ in rs)
    paths = [p for _, _, p in flat if p is not None]
    assert sorted(int(p.rsplit("-", 1)[1]) for p in paths) == list(range(SESSIONS * EACH))

    stat = setup.call(OpCode.EXISTS, ExistsRequest(root, False)).body.stat
    n = SESSIONS * EACH
    assert (stat.version, stat.cversion, stat.numChildren) == (n, n, n)
    kids = setup.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)).body.children
    assert len(kids) == n

    watcher.call(OpCode.SYNC, SyncRequest("/"))
    setup.call(OpCode.SYNC, SyncRequest("/"))
    watcher.call(OpCode.EXISTS, ExistsRequest("/", False))
    created = [e.path for e in watcher.pending if e.type == EventType.NODE_CREATED]
    changed = [e.path for e in watcher.pending if e.type == EventType.NODE_DATA_CHANGED]
    assert sorted(created) == sorted(paths)
    assert changed == [root] * n
    setup.close()
    watcher.close()
