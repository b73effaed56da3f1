"""The CI fuzz campaign: zetcd against ZooKeeper 3.8, bounded and derandomized (a fixed seed).

It runs under ``make test`` (.ci/run) against the suite's servers and keeps its report in
``reports/fuzz/`` at the top of the repository (``summary.md``, ``divergences.jsonl``, and a
replay file and pytest snippet per divergence under ``cases/``). Any divergence fails the test,
with the replay files in the message: fix the emulation, add the snippet as a regression test,
never hide a divergence by normalization (docs/fuzzing.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fuzz import report
from fuzz.campaign import Campaign, Config
from fuzz.coverage import ERROR_FAMILIES, TARGET_OPCODES
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
    coverage = summary["coverage"]
    assert coverage["examples"] >= 30, f"only {coverage['examples']} examples in the budget"
    families = coverage["error_families"]
    assert set(families) == set(ERROR_FAMILIES)
    assert all(f["hit"] for f in families.values()), families
    assert len(coverage["opcodes_hit"]) >= len(TARGET_OPCODES) - 3, coverage["opcodes_missed"]
