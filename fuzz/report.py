"""The campaign report: divergences as JSON lines, a Markdown summary and the same figures as
JSON.

``divergences.jsonl`` has one ``oracle.records`` divergence record per minimal case, with the
fuzzer's own keys added (``signature``, ``replay``, ``snippet``, ``steps``,
``steps_before_shrinking``, ``reproduced``, ``source``). ``summary.md`` gives the
configuration, the duration, ops run by type, coverage of opcodes, create modes and error codes
(by family), each in two columns, the coverage tour's and the generated examples', and each
divergence with its minimal case. ``summary.json`` holds the same figures: ``coverage`` for
both together, ``coverage_tour`` and ``coverage_generated`` apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fuzz.campaign import Campaign, Found
from fuzz.coverage import TARGET_OPCODES, Coverage
from fuzz.tour import TOUR
from oracle.records import to_dict


def _rel(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def divergence_line(found: Found, out: Path) -> dict[str, Any]:
    record = to_dict(found.divergence)
    record.update(
        {
            "signature": found.signature,
            "replay": _rel(found.replay, out),
            "snippet": _rel(found.snippet, out),
            "steps": [repr(s) for s in found.steps],
            "steps_before_shrinking": found.steps_before_shrinking,
            "steps_after_hypothesis": found.steps_after_hypothesis,
            "reproduced": found.reproduced,
            "source": found.source,
        }
    )
    return record


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _hits(cov: Coverage, names: list[str]) -> str:
    return ", ".join(f"{name} ({cov.errors[name]})" for name in names) or "-"


def markdown(campaign: Campaign) -> str:
    c = campaign.config
    cov = campaign.coverage
    tour = campaign.tour_coverage
    total = campaign.total_coverage()
    if c.tour:
        tour_line = (
            f"- coverage tour (fuzz/tour.py): {tour.steps} steps, run first; the figures below "
            "count it apart from the generated examples, and together in the headings"
        )
    else:
        tour_line = "- coverage tour: not run (the figures are the generated examples' alone)"
    verdict = f"**{len(campaign.found)} divergence(s)**" if campaign.found else "**no divergence**"
    out = [
        "# zetcd-fuzz campaign",
        "",
        f"{verdict} between zetcd (`{c.zetcd}`) and ZooKeeper (`{c.zookeeper}`).",
        "",
        f"- duration: {campaign.duration:.1f} s (budget {c.time_budget:g} s), "
        f"{campaign.rounds} round(s)",
        f"- examples: {cov.examples} run (budget {c.examples}), {cov.steps} steps "
        f"(at most {c.max_steps} per example), {cov.skipped} skipped",
        f"- seed: {c.seed if c.seed is not None else 'random'}; run id `{campaign.run_id}`",
        tour_line,
        "",
        "## Ops run by type",
        "",
        "| op | tour | generated |",
        "|---|---:|---:|",
    ]
    out += [
        f"| {_cell(op)} | {tour.ops[op]} | {cov.ops[op]} |" for op, _ in total.ops.most_common()
    ]
    hit, missed = total.opcode_coverage()
    sent, tour_sent = cov.merged_opcodes(), tour.merged_opcodes()
    out += [
        "",
        f"## Opcodes: {len(hit)}/{len(TARGET_OPCODES)} exercised "
        f"(tour {len(tour.opcode_coverage()[0])}, generated {len(cov.opcode_coverage()[0])})",
        "",
        "| opcode | tour | generated |",
        "|---|---:|---:|",
    ]
    out += [f"| {_cell(name)} | {tour_sent[name]} | {sent[name]} |" for name in TARGET_OPCODES]
    if missed:
        out += ["", f"Not exercised: {', '.join(missed)}."]
    generated_missed = cov.opcode_coverage()[1]
    if generated_missed and not missed and cov.examples:
        out += ["", f"Only the tour sent: {', '.join(generated_missed)}."]
    out += ["", "## Create modes", "", "| opcode and mode | tour | generated |", "|---|---:|---:|"]
    out += [f"| {_cell(k)} | {tour.modes[k]} | {cov.modes[k]} |" for k in sorted(total.modes)]
    families = total.family_coverage()
    tour_families, generated_families = tour.family_coverage(), cov.family_coverage()
    covered = sum(1 for h, _ in families.values() if h)
    by_tour = sum(1 for h, _ in tour_families.values() if h)
    by_generation = sum(1 for h, _ in generated_families.values() if h)
    out += [
        "",
        f"## Error codes from ZooKeeper: {covered}/{len(families)} families exercised "
        f"(tour {by_tour}, generated {by_generation})",
        "",
        "| family | tour | generated | not hit |",
        "|---|---|---|---|",
    ]
    for family, (_, m) in families.items():
        out.append(
            f"| {family} | {_hits(tour, tour_families[family][0])} "
            f"| {_hits(cov, generated_families[family][0])} | {', '.join(m) or '-'} |"
        )
    others = {
        k: n for k, n in total.errors.items() if not any(k in h for h, _ in families.values())
    }
    if others:
        out += ["", "Other codes: " + ", ".join(f"{k} ({n})" for k, n in others.items()) + "."]
    out += ["", "## Divergences", ""]
    if not campaign.found:
        out.append("None.")
    for i, f in enumerate(campaign.found, 1):
        d = f.divergence
        if f.source == "tour":
            shrunk = (
                f"Found by the coverage tour at its step {f.steps_before_shrinking - 1} "
                f"(of {len(TOUR)}); shrunk from {f.steps_before_shrinking} steps to "
                f"{len(f.steps)} (replays without one step at a time)"
            )
        else:
            shrunk = (
                f"Shrunk from {f.steps_before_shrinking} steps to {f.steps_after_hypothesis} "
                f"(hypothesis), then to {len(f.steps)} (replays without one step at a time)"
            )
        out += [
            f"### {i}. `{f.signature}`",
            "",
            f"{d.op}: {d.kind}. {d.detail}",
            "",
            f"{shrunk}; replay {'reproduces it' if f.reproduced else 'did NOT reproduce it'}. "
            f"Replay file `{_rel(f.replay, c.out)}`, pytest snippet `{_rel(f.snippet, c.out)}`.",
            "",
        ]
        if d.diff:
            out += [
                "| field | candidate (zetcd) | oracle (ZooKeeper) | note |",
                "|---|---|---|---|",
            ]
            out += [
                f"| `{_cell(x.field)}` | {_cell(repr(x.candidate))} | {_cell(repr(x.oracle))} "
                f"| {_cell(x.note)} |"
                for x in d.diff
            ]
            out.append("")
        out += ["```python", *(repr(s) for s in f.steps), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def write(campaign: Campaign) -> dict[str, Path]:
    out = campaign.config.out
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "divergences": out / "divergences.jsonl",
        "summary": out / "summary.md",
        "json": out / "summary.json",
    }
    with paths["divergences"].open("w", encoding="utf-8") as f:
        for found in campaign.found:
            f.write(json.dumps(divergence_line(found, out)) + "\n")
    paths["summary"].write_text(markdown(campaign), encoding="utf-8")
    summary = campaign.summary()
    summary["found"] = [
        {
            "signature": found.signature,
            "replay": _rel(found.replay, out),
            "steps": len(found.steps),
            "steps_before_shrinking": found.steps_before_shrinking,
            "steps_after_hypothesis": found.steps_after_hypothesis,
            "reproduced": found.reproduced,
            "source": found.source,
        }
        for found in campaign.found
    ]
    paths["json"].write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return paths
