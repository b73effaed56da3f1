"""The fuzzer finds what it should and nothing else.

A second ZooKeeper 3.8 plays the candidate. Behind a proxy that breaks one rule (a child's
setData fires its parent's child watch, fuzz/proxy.py), a campaign must find that rule, shrink
it to a handful of steps, and ``zetcd-fuzz replay`` must reproduce it; the coverage tour, which
runs into the rule too, must report it the same way; without the proxy, the two ZooKeepers must
never diverge (no false positives from the comparison).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import report
from fuzz.campaign import Campaign, Config
from fuzz.ops import (
    Close,
    Create,
    Drop,
    Exists,
    Expire,
    GetChildren,
    GetData,
    Open,
    Resume,
    SetData,
    Step,
    Unknown,
)
from fuzz.proxy import GETDATA_CVERSION, SETDATA_CHILD_WATCH, PlantedProxy
from fuzz.replay import run_steps
from fuzz.tour import TOUR
from oracle.sides import Side
from tests.servers import ZooKeeperServer
from zetcd.proto.constants import CreateMode, EventType

FUZZ = [sys.executable, "-m", "fuzz"]


@pytest.fixture(scope="module")
def zookeeper2() -> Iterator[ZooKeeperServer]:
    """Another ZooKeeper 3.8, configured like the session's: the planted candidate."""
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.stop()


def fuzz(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FUZZ, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(240)
def test_a_planted_divergence_is_found_shrunk_and_replayed(
    zookeeper: ZooKeeperServer, zookeeper2: ZooKeeperServer, tmp_path: Path
) -> None:
    with PlantedProxy(zookeeper2.address, SETDATA_CHILD_WATCH) as proxy:
        config = Config(
            zetcd=proxy.address,
            zookeeper=zookeeper.address,
            examples=400,
            max_steps=40,
            seed=7,  # its examples run into the rule (since the pipeline rule, 1 and 6 do not)
            time_budget=120,
            shrink_budget=10,
            minimize_budget=40,
            expiry_odds=1_000_000,
            max_rounds=1,
            out=tmp_path,
            tour=False,  # the tour would find the rule first: this is about hypothesis
        )
        campaign = Campaign(config).run()
        about = json.dumps(campaign.summary(), indent=1)[:3000]
        assert proxy.planted > 0, about
        assert [f.signature for f in campaign.found] == [
            "watch/watch.extra/NODE_CHILDREN_CHANGED"
        ], about
        found = campaign.found[0]
        assert found.reproduced, found.steps
        # a pipeline's requests count as steps of their own here
        ops = [type(op) for s in found.steps for op in getattr(s.op, "ops", None) or (s.op,)]
        # as few as four steps show it (open, create, getChildren with a watch, setData, some
        # of them perhaps in one pipeline); what seed 7 finds shrinks to about that, but
        # shrinking has a time budget and a sequential node's name counts the creates before
        # it, so a slow run may keep a few more
        assert len(found.steps) <= 10, found.steps
        assert found.steps_before_shrinking > len(found.steps)
        assert {Open, Create, GetChildren, SetData} <= set(ops)
        assert found.replay is not None and found.snippet is not None
        case = json.loads(found.replay.read_text())
        assert case["signature"] == found.signature and len(case["steps"]) == len(found.steps)
        assert case["answers"][-1]["divergences"][0]["kind"] == "watch.extra"

        replayed = fuzz("replay", str(found.replay), "--zetcd", proxy.address,
                        "--zookeeper", zookeeper.address)  # fmt: skip
        assert replayed.returncode == 1, replayed.stdout + replayed.stderr
        assert "DIVERGES" in replayed.stdout
        assert f"diverges: {found.signature} (the same divergence)" in replayed.stdout

    clean = fuzz("replay", str(found.replay), "--zetcd", zookeeper2.address,
                 "--zookeeper", zookeeper.address)  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no divergence" in clean.stdout


@pytest.mark.timeout(120)
def test_a_divergence_in_the_tour_is_reported_like_any_other(
    zookeeper: ZooKeeperServer, zookeeper2: ZooKeeperServer, tmp_path: Path
) -> None:
    """The tour sets a child watch and then changes a child's data, so it runs into the planted
    rule: a campaign with no examples to generate reports it, minimized and replayable, and
    still goes through the whole tour."""
    with PlantedProxy(zookeeper2.address, SETDATA_CHILD_WATCH) as proxy:
        config = Config(
            zetcd=proxy.address,
            zookeeper=zookeeper.address,
            examples=0,
            seed=1,
            shrink_budget=10,
            minimize_budget=30,
            out=tmp_path,
        )
        campaign = Campaign(config).run()
        paths = report.write(campaign)
        assert campaign.tour_coverage.steps == len(TOUR)
        assert campaign.coverage.examples == 0 and campaign.rounds == 0
        assert [(f.signature, f.source) for f in campaign.found] == [
            ("watch/watch.extra/NODE_CHILDREN_CHANGED", "tour")
        ], campaign.notes
        found = campaign.found[0]
        assert found.reproduced, found.steps
        assert found.steps_before_shrinking > len(found.steps)
        assert len(found.steps) <= 7, found.steps
        # a pipeline's requests count as steps of their own here
        ops = [type(op) for s in found.steps for op in getattr(s.op, "ops", None) or (s.op,)]
        assert {Open, Create, GetChildren, SetData} <= set(ops)
        assert found.replay is not None and found.snippet is not None
        case = json.loads(found.replay.read_text())
        assert case["source"] == "tour" and len(case["steps"]) == len(found.steps)
        assert "Found by the coverage tour" in paths["summary"].read_text()
        line = json.loads(paths["divergences"].read_text().splitlines()[0])
        assert line["source"] == "tour" and line["signature"] == found.signature
        replayed = run_steps(
            {Side.CANDIDATE: proxy.address, Side.ORACLE: zookeeper.address}, found.steps
        )
        assert replayed.signature == found.signature


@pytest.mark.timeout(240)
def test_two_zookeepers_never_diverge(
    zookeeper: ZooKeeperServer, zookeeper2: ZooKeeperServer, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    result = fuzz("run", "--zetcd", zookeeper2.address, "--zookeeper", zookeeper.address,
                  "--examples", "30", "--max-steps", "25", "--seed", "7", "--expiry-odds", "8",
                  "--time-budget", "60", "--out", str(out), timeout=200)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["divergences"] == 0 and summary["found"] == []
    assert summary["coverage"]["examples"] == 30
    assert summary["coverage_tour"]["steps"] > 0  # the tour ran, and agreed too
    assert (out / "divergences.jsonl").read_text() == ""
    assert "**no divergence**" in (out / "summary.md").read_text()


def test_the_other_planted_rule_shows_in_a_replay(
    zookeeper: ZooKeeperServer, zookeeper2: ZooKeeperServer
) -> None:
    steps = [
        Step(0, Open()),
        Step(0, Create("/a")),
        Step(0, Create("/a/b")),
        Step(0, GetData("/a")),
    ]
    steps += [Step(0, Create("/a/c")), Step(0, GetData("/a"))]
    with PlantedProxy(zookeeper2.address, GETDATA_CVERSION) as proxy:
        run = run_steps({Side.CANDIDATE: proxy.address, Side.ORACLE: zookeeper.address}, steps)
    assert [i for i, r in enumerate(run.results) if r.divergences] == [5]
    assert run.signature == "getData/field/body.stat.cversion"
    assert proxy.planted == 1


LIFECYCLE_STEPS = [
    Step(0, Open()),
    Step(1, Open(40000, None)),
    Step(2, Open(1_000_000, True)),
    Step(0, Create("/e", flags=CreateMode.EPHEMERAL)),
    Step(0, Create("/p")),
    Step(1, Exists("/e", True)),
    Step(1, GetChildren("/", True)),
    Step(2, GetData("/p", True)),
    Step(2, Drop()),
    Step(0, SetData("/p", b"x")),
    Step(2, Resume(set_watches=2)),
    Step(2, Drop()),
    Step(2, Resume(wrong_password=True)),
    Step(0, SetData("/p", b"y")),
    Step(2, Resume(set_watches=1)),
    Step(1, Resume()),  # a takeover
    Step(1, Resume(wrong_password=True)),  # a takeover with a wrong password
    Step(1, Exists("/e", True)),
    Step(1, GetChildren("/", True)),
    Step(0, Expire()),
    Step(0, Resume()),
    Step(2, Close()),
    Step(2, Resume()),
    Step(1, Unknown(999)),
    Step(1, GetData("/p")),
]


@pytest.mark.timeout(120)
def test_session_life_cycles_agree_between_two_zookeepers(
    zookeeper: ZooKeeperServer, zookeeper2: ZooKeeperServer
) -> None:
    addresses = {Side.CANDIDATE: zookeeper2.address, Side.ORACLE: zookeeper.address}
    run = run_steps(addresses, LIFECYCLE_STEPS)
    assert not run.divergences, run.describe()
    events = {i: r.events for i, r in enumerate(run.results)}
    assert 2 not in events[9]  # s2 is dropped: its watch went with its connection
    assert [e[1] for e in events[10][2][Side.ORACLE]] == [EventType.NODE_DATA_CHANGED]
    expired = [(e[1], e[3]) for e in events[19][1][Side.ORACLE]]
    assert sorted(expired) == [
        (EventType.NODE_DELETED, run.tree + "/e"),
        (EventType.NODE_CHILDREN_CHANGED, run.tree),
    ]
    refused = [r.exchanges[0].answers[Side.ORACLE].sessionId for r in run.results[20:23:2]]
    assert refused == [0, 0]
