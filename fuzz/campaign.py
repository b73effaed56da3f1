"""A campaign: the coverage tour, then hypothesis drives the state machine against both servers
until the example or time budget runs out; every divergence is shrunk, replayed and written down.

Theory of operation. A campaign starts with the coverage tour (:mod:`fuzz.tour`): a fixed
example that sends every target opcode and provokes every error family, so that the coverage
figures do not depend on what hypothesis generates in the time budget. It runs through the same
driver and comparison as generated examples; a divergence in it is minimized, replayed and
written down like one hypothesis found (the tour runs to its end all the same, and each further
signature it shows is reported when it reproduces without the earlier divergence). Its coverage
is kept apart from the generated examples' (:attr:`Campaign.tour_coverage`,
:attr:`Campaign.coverage`). Then the campaign runs in rounds. Each round is one hypothesis run of
:class:`~fuzz.machine.ZooKeeperMachine` (``report_multiple_bugs=False``): generation stops at
the first divergence, hypothesis shrinks it (bounded by ``shrink_budget``) and replays the
minimal sequence once more. The campaign takes that sequence, drops the opening of sessions
it never uses, replays it on fresh trees to confirm it reproduces, and writes a replay file
and a pytest snippet. The divergence's signature (op, kind, field) then becomes *known*: in
the next round, an example that runs into a known divergence is abandoned (hypothesis'
``reject``), so the search goes on for other bugs. Budgets are enforced the same way: an
example that starts past the deadline is rejected at once, which ends generation (and, past
the shrink deadline, shrinking) within moments.

The example database lives under ``<out>/hypothesis``: the next campaign with the same output
directory starts by replaying what failed before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, Phase, Verbosity, reject, settings
from hypothesis.control import current_build_context
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky, Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test

from fuzz import replay, seeding
from fuzz.compare import CANDIDATE, ORACLE, SIDES, signature
from fuzz.coverage import Coverage
from fuzz.driver import Driver, StepResult
from fuzz.machine import ZooKeeperMachine
from fuzz.ops import Step
from fuzz.sessions import Probe, ServerLost
from fuzz.tour import TOUR
from oracle.records import Divergence
from oracle.sides import Side


@dataclass
class Config:
    zetcd: str
    zookeeper: str
    examples: int = 100
    max_steps: int = 25
    seed: int | None = None
    time_budget: float = 300.0
    shrink_budget: float = 120.0
    out: Path = Path("reports/fuzz")
    expiry_odds: int = 16  # session expiry is enabled in one example in this many
    request_timeout: float = 5.0
    max_rounds: int = 4
    minimize_budget: float = 60.0  # replaying the shrunk case without one step at a time
    tour: bool = True  # run the coverage tour (fuzz/tour.py) before generating


class DivergenceFound(AssertionError):
    """Raised inside an example: the two servers answered a step differently."""


class BudgetExhausted(BaseException):
    """The time or example budget ran out: ends the hypothesis run at once (a rejected
    example would look like flaky data generation to hypothesis if its prefix ran before)."""


class CampaignAborted(BaseException):
    """A server cannot be reached: the campaign stops (not an Exception, so that hypothesis
    does not take it for a failing example and shrink it)."""


@dataclass
class Failure:
    signature: str
    steps: list[Step]
    results: list[StepResult]
    final: bool  # hypothesis' own replay of its minimal example


@dataclass
class Found:
    """A divergence found, shrunk and replayed."""

    signature: str
    divergence: Divergence
    steps: list[Step]
    results: list[StepResult]
    steps_before_shrinking: int
    steps_after_hypothesis: int
    reproduced: bool
    replay: Path | None = None
    snippet: Path | None = None
    source: str = "generated"  # or "tour": found by the coverage tour


@dataclass
class Progress:
    examples: int = 0
    steps: int = 0
    ops_covered: int = 0
    divergences: int = 0
    phase: str = "generating"


class _Factory:
    """The state machine factory hypothesis calls; carries the campaign and the seed."""

    def __init__(self, campaign: Campaign, seed: int | None) -> None:
        self.__name__ = "zetcd_fuzz_machine"  # names the example database entries
        self.campaign = campaign
        self._hypothesis_internal_use_seed = seed

    def __call__(self) -> ZooKeeperMachine:
        return ZooKeeperMachine(self.campaign)


def _is_final() -> bool:
    try:
        return bool(current_build_context().is_final)
    except Exception:
        return False


def _only_divergences(exc: BaseException) -> bool:
    if isinstance(exc, DivergenceFound):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_divergences(e) for e in exc.exceptions)
    if isinstance(exc, Flaky):
        return exc.__cause__ is None or _only_divergences(exc.__cause__)
    return False


class Campaign:
    def __init__(
        self, config: Config, *, on_progress: Callable[[Progress], None] | None = None
    ) -> None:
        self.config = config
        self.addresses: dict[Side, str] = {CANDIDATE: config.zetcd, ORACLE: config.zookeeper}
        self.run_id = uuid.uuid4().hex[:8]
        self.coverage = Coverage()  # the generated examples'
        self.tour_coverage = Coverage()  # the coverage tour's
        self.found: list[Found] = []
        self.known: set[str] = set()
        self.known_hits = 0
        self.notes: list[str] = []
        self.progress = Progress()
        self.on_progress = on_progress
        self.started = 0.0
        self.duration = 0.0
        self.rounds = 0
        self._deadline = 0.0
        self._shrink_deadline = float("inf")
        self._end = float("inf")  # nothing runs after: time budget + shrink + minimize budgets
        self._failures: list[Failure] = []
        self._examples = 0
        self._driver: Driver | None = None
        self._steps: list[Step] = []
        self._results: list[StepResult] = []
        self.probes = {s: Probe(s, self.addresses[s], config.request_timeout) for s in SIDES}

    # --- hooks called by the machine ------------------------------------------------------

    def _allowed(self) -> bool:
        if _is_final():
            return True
        now = time.monotonic()
        if self._failures:
            return now < self._shrink_deadline
        return now < self._deadline and self.coverage.examples < self.config.examples

    def begin_example(self) -> Driver:
        if not self._allowed():
            raise BudgetExhausted()
        self._examples += 1
        if not self._failures:
            self.coverage.examples += 1
        driver = Driver(
            self.addresses,
            f"/fz-{self.run_id}-{self._examples}",
            probes=self.probes,
            request_timeout=self.config.request_timeout,
        )
        try:
            driver.setup()
        except ServerLost as e:
            raise CampaignAborted(str(e)) from e
        self._driver, self._steps, self._results = driver, [], []
        self.progress.examples = self.coverage.examples
        return driver

    def end_example(self, driver: Driver) -> None:
        try:
            driver.teardown()
        except ServerLost as e:
            raise CampaignAborted(str(e)) from e

    def execute(self, step: Step) -> StepResult:
        assert self._driver is not None
        try:
            result = self._driver.run(step)
        except ServerLost as e:
            raise CampaignAborted(str(e)) from e
        self._steps.append(step)
        self._results.append(result)
        if not self._failures:  # coverage counts generated examples, not shrinking runs
            self.coverage.record(result)
            self._update_progress()
        elif self.on_progress is not None:
            self.on_progress(self.progress)
        if result.divergences:
            sig = signature(result.divergences[0])
            if sig in self.known:
                self.known_hits += 1
                reject()
            if not self._failures:
                self._shrink_deadline = min(
                    time.monotonic() + self.config.shrink_budget,
                    self._end - self.config.minimize_budget,
                )
                self.progress.phase = "shrinking"
            self._failures.append(Failure(sig, list(self._steps), list(self._results), _is_final()))
            raise DivergenceFound(f"{sig}: {result.divergences[0].detail}")
        return result

    def _update_progress(self) -> None:
        total = self.total_coverage()
        self.progress.steps = total.steps
        self.progress.ops_covered = len(total.opcode_coverage()[0])
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def total_coverage(self) -> Coverage:
        """The tour's and the generated examples' coverage together."""
        return self.tour_coverage + self.coverage

    # --- the tour -----------------------------------------------------------------------

    def _run_tour(self) -> None:
        """Run the coverage tour as one example, every step of it; then conclude each
        divergence it showed, in the order of their first steps."""
        self.progress.phase = "tour"
        driver = Driver(
            self.addresses,
            self._base("tour"),
            probes=self.probes,
            request_timeout=self.config.request_timeout,
        )
        results: list[StepResult] = []
        try:
            driver.setup()
            try:
                for step in TOUR:
                    results.append(driver.run(step))
                    self.tour_coverage.record(results[-1])
                    self._update_progress()
            finally:
                driver.teardown()
        except ServerLost as e:
            raise CampaignAborted(str(e)) from e
        firsts: dict[str, int] = {}
        for i, result in enumerate(results):
            for d in result.divergences:
                firsts.setdefault(signature(d), i)
        for sig, i in firsts.items():
            failure = Failure(sig, list(TOUR[: i + 1]), results[: i + 1], final=True)
            found = self._conclude([failure], source="tour")
            if found is None:
                self.notes.append(
                    f"tour: step {i} diverged too ({sig}), after the tour's first divergence; "
                    "it did not reproduce without it"
                )
                continue
            self.found.append(found)
            self.known.add(found.signature)
            self.progress.divergences = len(self.found)

    # --- the campaign -------------------------------------------------------------------

    def _settings(self, round_: int) -> settings:
        phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
        if round_:
            phases.remove(Phase.reuse)  # the database holds what this campaign already knows
        return settings(
            max_examples=max(1, self.config.examples - self.coverage.examples),
            stateful_step_count=self.config.max_steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=DirectoryBasedExampleDatabase(self.config.out / "hypothesis"),
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
            phases=phases,
            print_blob=False,
        )

    def run(self) -> Campaign:
        self.config.out.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self._deadline = self.started + self.config.time_budget
        c = self.config
        self._end = self._deadline + c.shrink_budget + c.minimize_budget
        try:
            if self.config.tour:
                self._run_tour()
            for round_ in range(self.config.max_rounds):
                if (
                    time.monotonic() >= self._deadline
                    or self.coverage.examples >= self.config.examples
                ):
                    break
                self.rounds += 1
                self._failures = []
                self._shrink_deadline = float("inf")
                self.progress.phase = "generating"
                seed = None if self.config.seed is None else self.config.seed + round_
                try:
                    factory = cast(Any, _Factory(self, seed))
                    with seeding.no_local_constants():
                        run_state_machine_as_test(factory, settings=self._settings(round_))
                except (BudgetExhausted, Unsatisfiable):
                    pass
                except Exception as exc:
                    if self._failures and _only_divergences(exc):
                        pass
                    elif isinstance(exc, Flaky) and not self._failures:
                        self.notes.append(f"round {self.rounds}: hypothesis reported {exc!r}")
                    else:
                        raise
                if not self._failures:
                    break
                found = self._conclude(self._failures)
                if found is None:  # cannot be: a failing example stops at its first divergence
                    self.notes.append(f"round {self.rounds}: {self._failures[0].signature} lost")
                    break
                self.found.append(found)
                self.known.add(found.signature)
                self.progress.divergences = len(self.found)
        finally:
            for probe in self.probes.values():
                probe.close()
            self.duration = time.monotonic() - self.started
        return self

    def _conclude(self, failures: list[Failure], *, source: str = "generated") -> Found | None:
        """Minimize the chosen failure, replay it and write its case; None when the failure's
        signature is not its first divergence and no smaller case makes it the first (a later
        divergence of the tour that the earlier one brings about)."""
        finals = [f for f in failures if f.final]
        chosen = finals[-1] if finals else min(failures, key=lambda f: len(f.steps))
        self.progress.phase = "minimizing"
        budget = self.config.minimize_budget
        if source == "tour":  # no hypothesis shrinking before: it gets that budget too
            budget += self.config.shrink_budget
        steps, results, isolated = self._minimize(chosen, budget)
        if not isolated:
            return None
        self.progress.phase = "replaying"
        check = replay.run_steps(self.addresses, steps, base=self._base("replay"))
        reproduced = check.signature == chosen.signature
        if reproduced:
            results = check.results
        found = Found(
            signature=chosen.signature,
            divergence=next(d for r in results for d in r.divergences),
            steps=steps,
            results=results,
            steps_before_shrinking=len(failures[0].steps),
            steps_after_hypothesis=len(chosen.steps),
            reproduced=reproduced,
            source=source,
        )
        found.replay, found.snippet = replay.write_case(self.config.out, len(self.found) + 1, found)
        return found

    def _base(self, what: str) -> str:
        self._examples += 1
        return f"/fz-{self.run_id}-{what}{self._examples}"

    def _minimize(
        self, failure: Failure, budget: float
    ) -> tuple[list[Step], list[StepResult], bool]:
        """Finish what hypothesis started, on the concrete steps: drop runs of steps, halving
        their length down to one step at a time (the openings of sessions included, which
        hypothesis cannot drop: they come from an initialize rule), cut what follows the first
        divergence, and number the sessions left from 0, keeping each change that still
        reproduces the same divergence: a run whose first divergence has the signature.
        The flag says whether the steps returned are such a run (a failure of the tour may
        start with another divergence)."""
        sig = failure.signature
        best, best_results = failure.steps, failure.results
        firsts = [d for r in best_results for d in r.divergences][:1]
        isolated = bool(firsts) and signature(firsts[0]) == sig
        deadline = min(time.monotonic() + budget, self._end)

        def attempt(candidate: list[Step]) -> bool:
            nonlocal best, best_results, isolated
            if time.monotonic() > deadline:
                return False
            run = replay.run_steps(self.addresses, candidate, base=self._base("min"))
            if run.signature != sig:
                return False
            first = next(i for i, r in enumerate(run.results) if r.divergences)
            best, best_results = candidate[: first + 1], run.results[: first + 1]
            isolated = True
            return True

        size = max(1, len(best) // 2)
        while time.monotonic() < deadline:
            changed = False
            end = len(best) - 1  # the divergent step itself stays
            while end > 0:
                start = max(0, end - size)
                if attempt(best[:start] + best[end:]):
                    changed = True
                end = min(start, len(best) - 1)
            if size == 1 and not changed:
                break
            size = max(1, size // 2) if not changed else size
        slots: dict[int, int] = {}
        for step in best:
            slots.setdefault(step.session, len(slots))
        renumbered = [Step(slots[s.session], s.op) for s in best]
        if renumbered != best:
            attempt(renumbered)
        return best, best_results, isolated

    def summary(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "zetcd": self.config.zetcd,
            "zookeeper": self.config.zookeeper,
            "seed": self.config.seed,
            "examples": self.config.examples,
            "max_steps": self.config.max_steps,
            "time_budget": self.config.time_budget,
            "duration": round(self.duration, 1),
            "rounds": self.rounds,
            "known_divergence_hits": self.known_hits,
            "notes": self.notes,
            "divergences": len(self.found),
            "tour": self.config.tour,
            "coverage": self.total_coverage().to_json(),
            "coverage_tour": self.tour_coverage.to_json(),
            "coverage_generated": self.coverage.to_json(),
        }
