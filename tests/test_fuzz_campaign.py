"""The CI fuzz campaign: zetcd against ZooKeeper 3.8, bounded and derandomized (a fixed seed).

It runs under ``make test`` (.ci/run) against the suite's servers and keeps its report in
``reports/fuzz/`` at the top of the repository (``summary.md``, ``divergences.jsonl``, and a
replay file and pytest snippet per divergence under ``cases/``). Any divergence fails the test,
with the replay files in the message: fix the emulation, add the snippet as a regression test,
never hide a divergence by normalization (docs/fuzzing.md).

Coverage: the campaign starts with the coverage tour (fuzz/tour.py), which sends every target
opcode and gets every error family by construction (tests/test_fuzz_tour.py checks the tour on
its own), so the report's figures do not depend on how much hypothesis generates in the time
budget on this machine, nor on its example database. What generation covers is checked apart,
with thresholds low enough for a slow machine, so that the test still fails if generation
breaks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fuzz import report
from fuzz.campaign import Campaign, Config
from fuzz.coverage import ERROR_FAMILIES
from fuzz.tour import TOUR
from tests.servers import ZooKeeperServer
from tests.zetcd_server import ZetcdServer

REPORTS = Path(__file__).resolve().parent.parent / "reports" / "fuzz"


@pytest.mark.timeout(300)
def test_ci_campaign_finds_no_divergence(zookeeper: ZooKeeperServer, zetcd: ZetcdServer) -> None:
    shutil.rmtree(REPORTS / "cases", ignore_errors=True)  # hypothesis/ stays: known failures
    config = Config(
        zetcd=zetcd.address,
        zookeeper=zookeeper.address,
        examples=60,
        max_steps=25,
        seed=0,
        time_budget=75,
        shrink_budget=15,
        minimize_budget=15,
        max_rounds=3,
        out=REPORTS,
    )
    campaign = Campaign(config).run()
    paths = report.write(campaign)
    found = "\n".join(
        f"  {f.signature}: {len(f.steps)} steps, replay {f.replay}" for f in campaign.found
    )
    assert not campaign.found, (
        f"zetcd diverged from ZooKeeper {len(campaign.found)} time(s):\n{found}\n"
        f"report: {paths['summary']}"
    )
    summary = json.loads(paths["json"].read_text())

    # The tour and the generated examples together: every opcode, every error family.
    coverage = summary["coverage"]
    families = coverage["error_families"]
    assert set(families) == set(ERROR_FAMILIES)
    assert all(f["hit"] for f in families.values()), families
    assert coverage["opcodes_missed"] == [], coverage["opcodes_missed"]
    assert summary["coverage_tour"]["steps"] == len(TOUR)

    # Generation on its own: enough examples, and a good part of the opcodes and families.
    generated = summary["coverage_generated"]
    assert generated["examples"] >= 20, f"only {generated['examples']} examples in the budget"
    assert generated["steps"] >= 5 * generated["examples"], generated["steps"]
    assert len(generated["opcodes_hit"]) >= 20, generated["opcodes_missed"]
    hit_families = [f for f, codes in generated["error_families"].items() if codes["hit"]]
    assert len(hit_families) >= 6, generated["error_families"]
