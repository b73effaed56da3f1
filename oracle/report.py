"""``zetcd report PATH``: a divergence log as rich tables, or as Markdown (``--markdown``) for a
CI job to publish."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oracle.records import load
from oracle.summary import counts_table

DETAIL_LIMIT = 200  # divergences shown one by one; the counts cover all of them


def count(records: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((str(r.get("op")), str(r.get("kind"))) for r in records)


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def _diff_lines(r: dict[str, Any], width: int = 60) -> list[str]:
    return [
        f"{d['field']}: {_short(d['candidate'], width)} ≠ {_short(d['oracle'], width)}"
        + (f" ({d['note']})" if d.get("note") else "")
        for d in r.get("diff") or []
    ]


def details_table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="divergences", title_justify="left", show_lines=True)
    for name in ("#", "time", "session", "xid", "op", "kind", "what"):
        table.add_column(name, overflow="fold")
    for i, r in enumerate(records[:DETAIL_LIMIT], 1):
        what = "\n".join([r.get("detail") or "", *_diff_lines(r)]).strip()
        table.add_row(
            str(i),
            str(r.get("time", "")),
            str(r.get("session") or ""),
            "" if r.get("xid") is None else str(r["xid"]),
            str(r.get("op")),
            str(r.get("kind")),
            what,
        )
    return table


def _cell(text: Any) -> str:
    s = text if isinstance(text, str) else json.dumps(text, sort_keys=True)
    return s.replace("|", "\\|").replace("\n", " ")


def markdown(records: list[dict[str, Any]], source: str) -> str:
    out = ["# zetcd cross-check report", "", f"{len(records)} divergences in `{source}`.", ""]
    counts = count(records)
    if counts:
        out += ["| op | kind | count |", "|---|---|---:|"]
        out += [
            f"| {_cell(op)} | {_cell(kind)} | {n} |" for (op, kind), n in sorted(counts.items())
        ]
        out.append("")
    for i, r in enumerate(records[:DETAIL_LIMIT], 1):
        xid = "" if r.get("xid") is None else f", xid {r['xid']}"
        out += [
            f"## {i}. {r.get('op')}: {r.get('kind')}",
            "",
            f"{r.get('time')}, session {r.get('session')}{xid}, answered by the "
            f"{r.get('answered') or '?'}. {r.get('detail') or ''}".rstrip(),
            "",
        ]
        if r.get("diff"):
            out += ["| field | rule | candidate | oracle | note |", "|---|---|---|---|---|"]
            out += [
                f"| `{_cell(d['field'])}` | {d['rule']} | {_cell(d['candidate'])} "
                f"| {_cell(d['oracle'])} | {_cell(d.get('note', ''))} |"
                for d in r["diff"]
            ]
            out.append("")
        if r.get("request") is not None:
            out += ["```json", json.dumps(r["request"], sort_keys=True), "```", ""]
    if len(records) > DETAIL_LIMIT:
        out.append(f"({len(records) - DETAIL_LIMIT} more not shown.)")
    return "\n".join(out).rstrip() + "\n"


def main(path: Path, *, as_markdown: bool = False, console: Console | None = None) -> None:
    """Print the report of the divergence log at ``path`` on stdout."""
    records = load(path)
    # not on a terminal (a CI log, a pipe): wide enough that the tables do not wrap
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    if as_markdown:
        console.file.write(markdown(records, str(path)))
        return
    console.print(f"{path}: {len(records)} divergences", soft_wrap=True)
    if records:
        console.print(counts_table(count(records)))
        console.print(details_table(records))
