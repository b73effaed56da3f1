"""The watch tables' bookkeeping that only the four-letter words show (units; the listings
themselves are compared with a real ZooKeeper in tests/test_observability.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from zetcd.emulation.watches import PERSISTENT, WatchManager
from zetcd.proto.constants import EventType


@dataclass(eq=False)
class _Watcher:
    auth_ids: tuple[tuple[str, str], ...] = ()
    stale: bool = False
    heard: list[tuple[int, str]] = field(default_factory=list)

    def notify(self, event_type: int, path: str) -> None:
        self.heard.append((event_type, path))


def test_a_watcher_keeps_its_emptied_path_set_until_dropped() -> None:
    m = WatchManager()
    w = _Watcher()
    m.data.add("/a", w)
    m.data.add("/b", w)
    m.data.trigger("/a", EventType.NODE_DATA_CHANGED, ())
    assert m.data.remove("/b", w)
    assert w.heard == [(EventType.NODE_DATA_CHANGED, "/a")]
    assert m.data.listed_by_watcher() == {w: []} and m.data.listed_by_path() == []
    assert not m.watching(w)  # no watch left, though wchc still lists it
    m.drop_watcher(w)
    assert m.data.listed_by_watcher() == {}


def test_a_closed_connection_takes_no_watch() -> None:
    m = WatchManager()
    w = _Watcher(stale=True)
    m.data.add("/a", w)
    m.add_persistent("/b", w, recursive=False)
    assert m.data.listed_by_watcher() == {} and not m.watching(w) and len(m.child) == 0


def test_listings_follow_the_tables_grown_size() -> None:
    """Paths in Java HashMap order: a table of 16 buckets until it held 13 paths, then 32."""
    m = WatchManager()
    w = _Watcher()
    for name in ("/zz", "/a", "/aa"):  # "/zz" and "/aa" share bucket 15 of 16
        m.data.add(name, w, PERSISTENT)
    assert m.data.listed_by_watcher()[w] == ["/a", "/zz", "/aa"]
    for i in range(10):
        m.data.add(f"/k{i}", w)
    grown = m.data.listed_by_watcher()[w]
    for i in range(10):
        m.data.trigger(f"/k{i}", EventType.NODE_DATA_CHANGED, ())
    # 32 buckets now, for good: "/zz" and "/aa" (bucket 15, in the order added) before "/a"
    # (bucket 18, it was 2)
    assert m.data.listed_by_watcher()[w] == [p for p in grown if not p.startswith("/k")]
    assert m.data.listed_by_watcher()[w] == ["/zz", "/aa", "/a"]
    assert [p for p, _ in m.data.listed_by_path()] == ["/zz", "/aa", "/a"]
