"""The campaign report: divergences as JSON lines, a Markdown summary and the same figures as
JSON.

``divergences.jsonl`` has one ``oracle.records`` divergence record per minimal case, with the
fuzzer's own keys added (``signature``, ``replay``, ``snippet``, ``steps``,
``steps_before_shrinking``, ``reproduced``). ``summary.md`` gives the configuration, the
duration, ops run by type, coverage of opcodes, create modes and error codes (by family), and
each divergence with its minimal case. ``summary.json`` holds the same figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fuzz.campaign import Campaign, Found
from fuzz.coverage import TARGET_OPCODES
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
        }
    )
    return record


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(campaign: Campaign) -> str:
    c = campaign.config
    cov = campaign.coverage
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
        "",
        "## Ops run by type",
        "",
        "| op | steps |",
        "|---|---:|",
    ]
    out += [f"| {_cell(op)} | {n} |" for op, n in cov.ops.most_common()]
    hit, missed = cov.opcode_coverage()
    sent = cov.merged_opcodes()
    out += [
        "",
        f"## Opcodes: {len(hit)}/{len(TARGET_OPCODES)} exercised",
        "",
        "| opcode | sent |",
        "|---|---:|",
    ]
    out += [f"| {_cell(name)} | {sent[name]} |" for name in TARGET_OPCODES]
    if missed:
        out += ["", f"Not exercised: {', '.join(missed)}."]
    out += ["", "## Create modes", "", "| opcode and mode | sent |", "|---|---:|"]
    out += [f"| {_cell(k)} | {n} |" for k, n in sorted(cov.modes.items())]
    families = cov.family_coverage()
    covered = sum(1 for h, _ in families.values() if h)
    out += [
        "",
        f"## Error codes from ZooKeeper: {covered}/{len(families)} families exercised",
        "",
        "| family | hit | not hit |",
        "|---|---|---|",
    ]
    for family, (h, m) in families.items():
        hits = ", ".join(f"{name} ({cov.errors[name]})" for name in h)
        out.append(f"| {family} | {hits or '-'} | {', '.join(m) or '-'} |")
    others = {k: n for k, n in cov.errors.items() if not any(k in h for h, _ in families.values())}
    if others:
        out += ["", "Other codes: " + ", ".join(f"{k} ({n})" for k, n in others.items()) + "."]
    out += ["", "## Divergences", ""]
    if not campaign.found:
        out.append("None.")
    for i, f in enumerate(campaign.found, 1):
        d = f.divergence
        out += [
            f"### {i}. `{f.signature}`",
            "",
            f"{d.op}: {d.kind}. {d.detail}",
            "",
            f"Shrunk from {f.steps_before_shrinking} steps to {f.steps_after_hypothesis} "
            f"(hypothesis), then to {len(f.steps)} (replays without one step at a time); "
            f"replay {'reproduces it' if f.reproduced else 'did NOT reproduce it'}. "
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
        }
        for found in campaign.found
    ]
    paths["json"].write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return paths
