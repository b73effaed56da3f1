"""``zetcd-fuzz``: differential fuzz campaigns of zetcd against ZooKeeper 3.8, and replays.

    zetcd-fuzz run --zetcd HOST:PORT --zookeeper HOST:PORT [--examples N] [--max-steps K]
                   [--seed S] [--time-budget SECONDS] [--out DIR] [--no-tour]
    zetcd-fuzz run --spawn ...            start etcd, zetcd and ZooKeeper on loopback
    zetcd-fuzz replay FILE (--zetcd HOST:PORT --zookeeper HOST:PORT | --spawn)

``run`` exits 1 when anything diverged, ``replay`` when the case still diverges; 2 on a usage
or server error.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from hypothesis.configuration import set_hypothesis_home_dir
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fuzz import replay as replays
from fuzz import report
from fuzz.campaign import Campaign, CampaignAborted, Config
from fuzz.campaign import Progress as CampaignProgress
from fuzz.compare import CANDIDATE, ORACLE
from fuzz.coverage import TARGET_OPCODES
from fuzz.proxy import RULES, PlantedProxy
from fuzz.spawn import SpawnError, servers

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None)
console = Console(stderr=True)

ZetcdOpt = Annotated[
    str | None, typer.Option("--zetcd", help="zetcd (the candidate) at HOST:PORT.")
]
ZooKeeperOpt = Annotated[
    str | None, typer.Option("--zookeeper", help="ZooKeeper 3.8 (the oracle) at HOST:PORT.")
]
SpawnOpt = Annotated[
    bool, typer.Option("--spawn", help="Start etcd, zetcd and ZooKeeper on loopback.")
]


class Rule(enum.StrEnum):
    """The divergences fuzz/proxy.py can plant."""

    SETDATA_CHILD_WATCH = RULES[0]
    GETDATA_CVERSION = RULES[1]


PlantOpt = Annotated[
    Rule | None,
    typer.Option(help="Put a proxy that plants a divergence in front of zetcd."),
]


@contextlib.contextmanager
def _targets(
    zetcd: str | None, zookeeper: str | None, spawn: bool, plant: str | None
) -> Iterator[tuple[str, str]]:
    try:
        with servers(zetcd, zookeeper, spawn) as (candidate, oracle):
            if plant is None:
                yield candidate, oracle
                return
            with PlantedProxy(candidate, plant) as proxy:
                console.print(f"planted divergence {plant!r}: zetcd is behind {proxy.address}")
                yield proxy.address, oracle
    except (SpawnError, OSError) as e:
        console.print(f"zetcd-fuzz: {e}")
        raise typer.Exit(2) from None


class _Display:
    """The live progress line: examples, steps, opcodes covered, divergences."""

    def __init__(self, progress: Progress, examples: int) -> None:
        self.progress = progress
        self.task = progress.add_task("generating", total=examples, steps=0, ops="", found=0)
        self._last = 0.0

    def __call__(self, p: CampaignProgress, *, force: bool = False) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and not force:
            return
        self._last = now
        self.progress.update(
            self.task,
            description=p.phase,
            completed=p.examples,
            steps=p.steps,
            ops=f"{p.ops_covered}/{len(TARGET_OPCODES)}",
            found=p.divergences,
        )


@app.command()
def run(
    zetcd: ZetcdOpt = None,
    zookeeper: ZooKeeperOpt = None,
    spawn: SpawnOpt = False,
    examples: Annotated[
        int, typer.Option(help="Examples (op sequences) to generate.", min=1)
    ] = 100,
    max_steps: Annotated[int, typer.Option(help="Steps per example, at most.", min=1)] = 25,
    seed: Annotated[
        int | None, typer.Option(help="Seed: the same seed generates the same campaign.")
    ] = None,
    time_budget: Annotated[
        float, typer.Option(help="Seconds after which no example starts.", min=0)
    ] = 300.0,
    out: Annotated[
        Path, typer.Option(help="Report, replay files and hypothesis' example database.")
    ] = Path("reports/fuzz"),
    shrink_budget: Annotated[
        float, typer.Option(help="Seconds to shrink a divergence.", min=0)
    ] = 120.0,
    expiry_odds: Annotated[
        int, typer.Option(help="Session expiry (seconds each) is enabled in 1 example in N.", min=1)
    ] = 16,
    plant: PlantOpt = None,
    tour: Annotated[
        bool,
        typer.Option(
            "--tour/--no-tour",
            help="Run the coverage tour (fuzz/tour.py) before generating examples.",
        ),
    ] = True,
) -> None:
    """Fuzz zetcd against ZooKeeper; exit 1 if anything diverged."""
    # hypothesis' own files (its constants cache) go under --out too, not ./.hypothesis
    set_hypothesis_home_dir(out / "hypothesis")
    with _targets(zetcd, zookeeper, spawn, plant and plant.value) as (candidate, oracle):
        config = Config(
            zetcd=candidate,
            zookeeper=oracle,
            examples=examples,
            max_steps=max_steps,
            seed=seed,
            time_budget=time_budget,
            shrink_budget=shrink_budget,
            out=out,
            expiry_odds=max(1, expiry_odds),
            tour=tour,
        )
        columns = (
            TextColumn("{task.description:>10}"),
            BarColumn(),
            TextColumn("examples {task.completed}/{task.total}"),
            TextColumn("steps {task.fields[steps]}"),
            TextColumn("opcodes {task.fields[ops]}"),
            TextColumn("divergences {task.fields[found]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            display = _Display(progress, examples)
            campaign = Campaign(config, on_progress=display)
            try:
                campaign.run()
            except CampaignAborted as e:
                console.print(f"zetcd-fuzz: campaign aborted: {e}")
                report.write(campaign)
                raise typer.Exit(2) from None
            campaign.progress.phase = "done"
            display(campaign.progress, force=True)
        paths = report.write(campaign)
    hit, _ = campaign.total_coverage().opcode_coverage()
    tour_steps = f" (and the tour's {campaign.tour_coverage.steps})" if config.tour else ""
    console.print(
        f"{campaign.coverage.examples} examples, {campaign.coverage.steps} steps{tour_steps}, "
        f"{len(hit)}/{len(TARGET_OPCODES)} opcodes in {campaign.duration:.0f} s: "
        f"{len(campaign.found)} divergence(s). Report: {paths['summary']}"
    )
    for found in campaign.found:
        console.print(f"  {found.signature}: {len(found.steps)} steps, replay {found.replay}")
    raise typer.Exit(1 if campaign.found else 0)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="A replay file written by `run`.")],
    zetcd: ZetcdOpt = None,
    zookeeper: ZooKeeperOpt = None,
    spawn: SpawnOpt = False,
    plant: PlantOpt = None,
) -> None:
    """Re-run a replay file against both sides and show the diff; exit 1 if it diverges."""
    try:
        steps, data = replays.load_steps(file)
    except (OSError, ValueError, KeyError) as e:
        console.print(f"zetcd-fuzz: {file}: {e}")
        raise typer.Exit(2) from None
    with _targets(zetcd, zookeeper, spawn, plant and plant.value) as (candidate, oracle):
        run = replays.run_steps({CANDIDATE: candidate, ORACLE: oracle}, steps)
    out = Console(width=None if sys.stdout.isatty() else 160)  # a pipe or CI log: no wrapping
    replays.show(run, out)
    expected = data.get("signature")
    if run.divergences:
        same = "the same divergence" if run.signature == expected else f"not {expected}"
        out.print(f"diverges: {run.signature} ({same})", markup=False)
        raise typer.Exit(1)
    out.print(f"no divergence (the file recorded {expected})", markup=False)


def main() -> None:
    # SIGPIPE stays ignored: the fuzzer writes to servers that may reset their connections
    app(args=sys.argv[1:], prog_name="zetcd-fuzz")
