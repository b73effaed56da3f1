"""The monotone zxid mapping: consistent histories pass; reordered, merged and split ones do not;
read zxids tolerate transactions one side made alone; translation of client-held zxids."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oracle.normalize import ZxidKind
from oracle.sides import Side
from oracle.zxidmap import ZxidMap

TXN = ZxidKind.TXN
READ = ZxidKind.READ


def feed(pairs: list[tuple[int, int, ZxidKind]]) -> list[str]:
    m = ZxidMap()
    out = []
    for c, o, kind in pairs:
        conflict = m.observe(c, o, kind)
        if conflict is not None:
            out.append(conflict.how)
    return out


def test_consistent_history() -> None:
    assert feed([(100, 5, TXN), (104, 6, TXN), (104, 6, READ), (104, 6, TXN), (230, 9, TXN)]) == []


def test_pairs_may_arrive_in_any_order_if_consistent() -> None:
    assert feed([(230, 9, TXN), (100, 5, TXN), (150, 7, TXN), (150, 7, TXN)]) == []


def test_reordered() -> None:
    assert feed([(100, 5, TXN), (200, 4, TXN)]) == ["reordered"]
    assert feed([(100, 5, TXN), (300, 9, TXN), (200, 10, TXN)]) == ["reordered"]


def test_merged() -> None:
    # two candidate transactions where ZooKeeper saw one
    assert feed([(100, 5, TXN), (101, 5, TXN)]) == ["merged"]


def test_split() -> None:
    # one candidate zxid for two ZooKeeper transactions (a write that spent no zxid)
    assert feed([(100, 5, TXN), (100, 6, TXN)]) == ["split"]


def test_literals_must_be_equal() -> None:
    assert feed([(0, 0, TXN), (-1, -1, READ), (0, 0, READ)]) == []
    assert feed([(0, 5, TXN)]) == ["literal"]
    assert feed([(7, -1, READ)]) == ["literal"]


def test_a_conflict_is_reported_once_and_not_added() -> None:
    m = ZxidMap()
    assert m.observe(100, 5, TXN) is None
    conflict = m.observe(100, 6, TXN)
    assert conflict is not None and conflict.against == (100, 5)
    assert "0x64" in conflict.describe() and "0x6" in conflict.describe()
    assert m.observe(100, 6, TXN) is None  # reported already
    assert m.observe(101, 6, TXN) is None  # the map still says 100 ~ 5


def test_read_zxids_tolerate_one_sided_background_transactions() -> None:
    # the oracle expired a session (zxid 6) before the candidate did: reads see 5 vs 6
    assert (
        feed([(100, 5, TXN), (100, 5, READ), (100, 6, READ), (101, 6, READ), (102, 7, TXN)]) == []
    )
    # ... and the candidate's own background transaction
    assert feed([(100, 5, TXN), (101, 5, READ), (102, 6, TXN), (102, 6, READ)]) == []


def test_read_zxids_still_order_transactions() -> None:
    # a read that the candidate answered after txn 102 but the oracle before txn 6
    assert feed([(102, 6, TXN), (102, 5, READ)]) == ["reordered"]
    # reads never cross each other
    assert feed([(100, 6, READ), (101, 5, READ)]) == ["reordered"]
    # transactions placed against each other still, whatever reads came between
    assert feed([(100, 5, TXN), (101, 7, READ), (102, 4, TXN)]) == ["reordered"]


def test_a_transaction_learned_after_reads_it_does_not_fit_was_made_in_the_background() -> None:
    # CI, 2026-12-05: the candidate expired a session (0x16b800) before ZooKeeper (0x79b); a
    # ping between the two expiries read (0x16b800, 0x79a); then a Stat's pzxid named the expiry
    assert feed([(0x16B700, 0x79A, TXN), (0x16B800, 0x79A, READ), (0x16B800, 0x79B, TXN)]) == []
    # the same with the oracle first, and a read after both sides made it
    assert feed([(100, 5, TXN), (100, 6, READ), (101, 7, READ), (101, 6, TXN)]) == []
    m = ZxidMap()
    for c, o, kind in [(100, 5, READ), (101, 7, READ), (103, 8, READ), (100, 6, TXN)]:
        assert m.observe(c, o, kind) is None
    assert m._reads == [(101, 7), (103, 8)]  # the read taken between the two sides' went
    assert m.observe(100, 5, READ) is not None  # and now the transaction orders reads
    assert feed([(100, 5, READ), (102, 7, READ), (101, 6, TXN)]) == []
    assert feed([(100, 5, READ), (101, 7, READ), (101, 6, TXN)]) == []


def test_translate() -> None:
    m = ZxidMap()
    for c, o, kind in [(100, 5, TXN), (104, 6, TXN), (110, 6, READ), (230, 9, TXN)]:
        assert m.observe(c, o, kind) is None
    assert m.translate(104, Side.CANDIDATE) == 6
    assert m.translate(6, Side.ORACLE) == 110  # the latest candidate zxid seen with it
    assert m.translate(120, Side.CANDIDATE) == 6  # the largest known below it
    assert m.translate(50, Side.CANDIDATE) == 0  # below everything known
    assert m.translate(0, Side.ORACLE) == 0
    assert m.translate(1 << 60, Side.CANDIDATE) == 9 + (1 << 60) - 230  # ahead stays ahead
    assert ZxidMap().translate(77, Side.ORACLE) == 77


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40, unique=True), st.data())
def test_any_monotone_history_is_consistent(cands: list[int], data: st.DataObject) -> None:
    cands.sort()
    oracles = sorted(
        data.draw(
            st.lists(st.integers(1, 10_000), min_size=len(cands), max_size=len(cands), unique=True)
        )
    )
    pairs = list(zip(cands, oracles, strict=True))
    order = data.draw(st.permutations(pairs))
    m = ZxidMap()
    for c, o in order:
        assert m.observe(c, o, TXN) is None
        # a read right at a transaction is consistent too
        assert m.observe(c, o, READ) is None


@given(st.lists(st.integers(1, 50), min_size=2, max_size=20, unique=True), st.data())
def test_any_swap_is_caught(cands: list[int], data: st.DataObject) -> None:
    cands.sort()
    oracles = list(range(10, 10 + len(cands)))
    i = data.draw(st.integers(0, len(cands) - 2))
    j = data.draw(st.integers(i + 1, len(cands) - 1))
    oracles[i], oracles[j] = oracles[j], oracles[i]
    pairs = list(zip(cands, oracles, strict=True))
    assert feed([(c, o, TXN) for c, o in data.draw(st.permutations(pairs))]) != []


def test_forgetting_old_pairs_keeps_the_checks_sound() -> None:
    m = ZxidMap(limit=10)
    for i in range(1, 40):
        assert m.observe(100 + 2 * i, i, TXN) is None
        assert m.observe(100 + 2 * i, i, READ) is None
    assert len(m._txn_c) <= 10 and len(m._reads) <= 10
    assert m.observe(102, 1, TXN) is None  # forgotten, and still consistent
    assert m.observe(178, 39, TXN) is None
    assert m.observe(178, 38, TXN) is not None  # split: recent enough to be known
