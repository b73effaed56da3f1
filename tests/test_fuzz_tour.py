"""The coverage tour (fuzz/tour.py): on its own, against the suite's zetcd and ZooKeeper, it
sends every target opcode and gets every error code of every family, without a divergence.

This is what makes the CI campaign's coverage figures hold whatever hypothesis generates in its
time budget; a change to the tour, the driver or the servers that loses a target fails here.
"""

from __future__ import annotations

import json
import time

from fuzz.compare import CANDIDATE, ORACLE
from fuzz.coverage import ERROR_FAMILIES, TARGET_OPCODES, Coverage
from fuzz.driver import _creates_ttl_crash
from fuzz.ops import Check, Multi, Resume, Step, step_from_json, step_to_json
from fuzz.replay import run_steps
from fuzz.tour import TOUR
from tests.servers import ZooKeeperServer
from tests.zetcd_server import ZetcdServer
from zetcd.proto.constants import Err


def test_the_tour_is_plain_steps_that_never_crash_zookeeper() -> None:
    assert all(isinstance(step, Step) for step in TOUR)
    assert [step_from_json(json.loads(json.dumps(step_to_json(s)))) for s in TOUR] == list(TOUR)
    assert not any(_creates_ttl_crash(step.op) for step in TOUR)
    # A standalone check that succeeds gets no reply from ZooKeeper 3.8 (docs/differences.md).
    assert all(step.op.version not in (-1, 0, 1) for step in TOUR if isinstance(step.op, Check))
    assert len(TOUR) <= 80


def test_the_tour_covers_every_opcode_and_error_code(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    started = time.monotonic()
    run = run_steps({CANDIDATE: zetcd.address, ORACLE: zookeeper.address}, TOUR)
    took = time.monotonic() - started
    assert not run.divergences, run.describe()
    assert [r.skipped for r in run.results if r.skipped] == []
    coverage = Coverage()
    for result in run.results:
        coverage.record(result)
    hit, missed = coverage.opcode_coverage()
    assert missed == [] and len(hit) == len(TARGET_OPCODES)
    families = coverage.family_coverage()
    assert set(families) == set(ERROR_FAMILIES)
    assert {family: m for family, (_, m) in families.items() if m} == {}
    assert took < 30, f"the tour took {took:.1f} s: it must stay short"

    # Not only error codes: watches fire (one set before a drop fires on the resume), and a
    # multi fails part-way (Ok, the failing op's code, then RuntimeInconsistency).
    assert {slot for r in run.results for slot in r.events} >= {1, 2}
    resumes = [r for r in run.results if isinstance(r.step.op, Resume)]
    assert resumes and all(r.events.get(r.step.session) for r in resumes)
    multi = next(r for r in run.results if isinstance(r.step.op, Multi) and not r.step.op.read)
    assert multi.errors[1:] == [Err.OK, Err.BAD_VERSION, Err.RUNTIME_INCONSISTENCY]
