"""Replay files: a minimal divergent case as JSON and as a pytest snippet, and running one.

A replay file holds the op sequence (``steps``, as :func:`fuzz.ops.step_to_json` writes them)
and, for each step, what both sides answered and the watch events each session received,
plus the divergence records (``oracle.records`` JSON). :func:`run_steps` runs a sequence
against both servers under a fresh tree; :func:`show` prints it side by side.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from fuzz.compare import CANDIDATE, ORACLE, SIDES, describe_events, signature
from fuzz.driver import Driver, StepResult
from fuzz.ops import Step, op_name, step_from_json, step_to_json
from oracle.records import Divergence, jsonable, to_dict
from oracle.sides import Side
from zetcd.proto.constants import Err

if TYPE_CHECKING:
    from fuzz.campaign import Found

FORMAT = "zetcd-fuzz-replay/1"


@dataclass
class CaseRun:
    steps: list[Step]
    results: list[StepResult]
    tree: str

    @property
    def divergences(self) -> list[Divergence]:
        return [d for r in self.results for d in r.divergences]

    @property
    def signature(self) -> str | None:
        ds = self.divergences
        return signature(ds[0]) if ds else None

    def describe(self) -> str:
        lines = []
        for i, r in enumerate(self.results):
            for d in r.divergences:
                lines.append(f"step {i} {r.step!r}: {d.op} {d.kind} {d.detail}")
                lines += [
                    f"    {f.field}: {f.candidate!r} != {f.oracle!r} {f.note}" for f in d.diff
                ]
        return "\n".join(lines) or "no divergence"


def run_steps(
    addresses: Mapping[Side, str],
    steps: Sequence[Step],
    *,
    base: str | None = None,
    request_timeout: float = 5.0,
) -> CaseRun:
    """Run ``steps`` on both servers under a fresh tree; every step runs, divergent or not."""
    driver = Driver(
        addresses, base or f"/fz-replay-{uuid.uuid4().hex[:8]}", request_timeout=request_timeout
    )
    driver.setup()
    results: list[StepResult] = []
    try:
        for step in steps:
            results.append(driver.run(step))
    finally:
        driver.teardown()
    return CaseRun(list(steps), results, driver.tree)


# --- files ------------------------------------------------------------------------------


def _answers(result: StepResult) -> dict[str, Any]:
    return {
        "exchanges": [
            {
                "op": ex.op,
                "request": jsonable(ex.request),
                **{side.value: jsonable(ex.answers.get(side)) for side in SIDES},
            }
            for ex in result.exchanges
        ],
        "events": {
            f"s{slot}": {side.value: describe_events(keys[side]) for side in SIDES}
            for slot, keys in result.events.items()
        },
        "skipped": result.skipped,
        "divergences": [to_dict(d) for d in result.divergences],
    }


def case_json(found: Found) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "signature": found.signature,
        "kind": found.divergence.kind,
        "op": found.divergence.op,
        "steps_before_shrinking": found.steps_before_shrinking,
        "steps_after_hypothesis": found.steps_after_hypothesis,
        "reproduced": found.reproduced,
        "source": found.source,
        "steps": [step_to_json(s) for s in found.steps],
        "answers": [_answers(r) for r in found.results],
        "divergence": to_dict(found.divergence),
    }


def load_steps(path: Path) -> tuple[list[Step], dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return [step_from_json(s) for s in data["steps"]], data


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]


def snippet(found: Found, replay_path: Path | None = None) -> str:
    """A pytest module that replays the case against the suite's ``zetcd`` and ``zookeeper``
    fixtures and fails while the divergence is there."""
    names = sorted({type(s.op).__name__ for s in found.steps} | _nested(found.steps) | {"Step"})
    steps = "\n".join(f"    {s!r}," for s in found.steps)
    where = f" Replay file: {replay_path.name}." if replay_path is not None else ""
    enums = [name for name in ("CreateMode", "OpCode") if f"{name}." in steps]
    opcode = f"from zetcd.proto.constants import {', '.join(enums)}\n" if enums else ""
    return f'''"""zetcd-fuzz regression: {found.signature}.{where}"""

from fuzz.ops import {", ".join(names)}
from fuzz.replay import run_steps
from oracle.sides import Side
{opcode}
STEPS = [
{steps}
]


def test_fuzz_{slug(found.signature)}(zookeeper, zetcd):
    run = run_steps({{Side.CANDIDATE: zetcd.address, Side.ORACLE: zookeeper.address}}, STEPS)
    assert not run.divergences, run.describe()
'''


def _nested(steps: Sequence[Step]) -> set[str]:
    names: set[str] = set()
    for s in steps:
        for sub in getattr(s.op, "ops", ()):
            names.add(type(sub).__name__)
        inner = getattr(s.op, "op", None)
        if inner is not None:
            names.add(type(inner).__name__)
            names |= {type(sub).__name__ for sub in getattr(inner, "ops", ())}
    return names


def write_case(out: Path, n: int, found: Found) -> tuple[Path, Path]:
    cases = out / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    stem = f"divergence-{n:02d}-{slug(found.signature)}"
    replay_path = cases / f"{stem}.json"
    replay_path.write_text(json.dumps(case_json(found), indent=1) + "\n", encoding="utf-8")
    snippet_path = cases / f"test_{stem.replace('-', '_')}.py"
    snippet_path.write_text(snippet(found, replay_path), encoding="utf-8")
    return replay_path, snippet_path


# --- showing --------------------------------------------------------------------------------


def _short(answer: Any, tree: str, width: int = 70) -> str:
    if isinstance(answer, dict) and "header" in answer:
        err = answer["header"].err
        try:
            text = Err(err).name
        except ValueError:
            text = f"err {err}"
        text += f" zxid 0x{answer['header'].zxid:x}"
        body = answer.get("body")
        if body is not None:
            text += f" {body!r}"
    elif isinstance(answer, dict) and "outcome" in answer:
        text = f"<{answer['outcome']}> {answer.get('detail', '')}".strip()
    else:
        text = repr(answer)
    text = text.replace(tree, "")
    return text if len(text) <= width else text[: width - 1] + "…"


def show(run: CaseRun, console: Console) -> None:
    table = Table(title="replay", title_justify="left", show_lines=True)
    for name in ("#", "step", "candidate (zetcd)", "oracle (ZooKeeper)", ""):
        table.add_column(name, overflow="fold")
    for i, r in enumerate(run.results):
        cand, orc = [], []
        for ex in r.exchanges:
            cand.append(f"{ex.op}: {_short(ex.answers.get(CANDIDATE), run.tree)}")
            orc.append(f"{ex.op}: {_short(ex.answers.get(ORACLE), run.tree)}")
        for slot, keys in sorted(r.events.items()):
            cand.append(f"s{slot} events {describe_events(keys[CANDIDATE], run.tree)}")
            orc.append(f"s{slot} events {describe_events(keys[ORACLE], run.tree)}")
        if r.skipped:
            cand.append(f"(skipped: {r.skipped})")
        mark = "[red]DIVERGES[/red]" if r.divergences else ""
        table.add_row(
            str(i), f"s{r.step.session} {op_name(r.step.op)}", "\n".join(cand), "\n".join(orc), mark
        )
    console.print(table)
    for i, r in enumerate(run.results):
        for d in r.divergences:
            console.print(f"step {i} {r.step!r}", style="bold red", markup=False)
            console.print(f"  {d.op}: {d.kind}. {d.detail}", markup=False)
            for f in d.diff:
                note = f" ({f.note})" if f.note else ""
                console.print(
                    f"  {f.field}: candidate {f.candidate!r} != oracle {f.oracle!r}{note}",
                    markup=False,
                )
