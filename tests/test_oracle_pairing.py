"""Pairing watch events and closes across the two sides: pairs, missing, extra, misordered."""

from __future__ import annotations

from oracle.pairing import Pairing
from oracle.sides import Side

CAND = Side.CANDIDATE
ORAC = Side.ORACLE
DATA = (3, "/a")
KIDS = (4, "/")


def test_events_pair_by_key_whatever_side_comes_first() -> None:
    p = Pairing(deadline=1.0)
    assert p.add(ORAC, DATA, 0.0) is None
    assert p.pending
    assert p.add(CAND, DATA, 0.1) is None
    assert not p.pending
    assert p.add(CAND, KIDS, 0.2) is None
    assert p.add(ORAC, KIDS, 0.3) is None
    assert p.expired(10.0) == []


def test_an_unpaired_event_expires_after_the_deadline() -> None:
    p = Pairing(deadline=1.0)
    p.add(ORAC, DATA, 0.0)
    p.add(CAND, KIDS, 0.5)
    assert p.expired(0.9) == []
    (missing,) = p.expired(1.2)
    assert (missing.side, missing.key) == (ORAC, DATA)
    (extra,) = p.expired(1.6)
    assert (extra.side, extra.key) == (CAND, KIDS)
    assert not p.pending and p.oldest() is None


def test_a_duplicate_is_extra() -> None:
    p = Pairing(deadline=1.0)
    p.add(ORAC, DATA, 0.0)
    p.add(CAND, DATA, 0.0)
    p.add(CAND, DATA, 0.0)
    assert [(a.side, a.key) for a in p.expired(5.0)] == [(CAND, DATA)]


def test_crossed_pairs_are_misordered() -> None:
    p = Pairing(deadline=1.0)
    p.add(ORAC, DATA, 0.0)
    p.add(ORAC, KIDS, 0.0)
    assert p.add(CAND, KIDS, 0.0) is None
    crossed = p.add(CAND, DATA, 0.0)
    assert crossed is not None
    assert (crossed.key, crossed.candidate_seq, crossed.oracle_seq) == (DATA, 1, 0)


def test_interleaved_arrivals_in_the_same_order_are_not_misordered() -> None:
    p = Pairing(deadline=1.0)
    assert p.add(CAND, DATA, 0.0) is None
    assert p.add(ORAC, DATA, 0.0) is None
    assert p.add(ORAC, KIDS, 0.0) is None
    assert p.add(CAND, (2, "/x"), 0.0) is None  # unpaired, on the way
    assert p.add(CAND, KIDS, 0.0) is None
    assert [a.key for a in p.expired(5.0)] == [(2, "/x")]


def test_match_only_drops_what_pairs_with_nothing() -> None:
    p = Pairing(deadline=1.0)
    p.add(ORAC, DATA, 0.0)
    assert p.add(CAND, KIDS, 0.1, match_only=True) is None
    assert p.add(CAND, DATA, 0.2, match_only=True) is None
    assert not p.pending


def test_waiting() -> None:
    p = Pairing(deadline=1.0)
    p.add(CAND, "close", 0.0)
    assert p.waiting(CAND, "close") and not p.waiting(ORAC, "close")
    assert p.oldest() == 0.0
    p.add(ORAC, "close", 0.5)
    assert not p.waiting(CAND, "close")
