"""The live summary of divergences on stderr: counts by op and kind.

On a terminal it is a rich Live table redrawn as divergences come; otherwise (a log file, CI) the
table is printed again whenever the counts changed, at most every ``interval`` seconds. The
final table is printed at shutdown either way.
"""

from __future__ import annotations

from collections import Counter

import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from oracle.records import KINDS, Divergence

LIVE = "cross-check (live)"


def counts_table(counts: Counter[tuple[str, str]], title: str | None = None) -> Table:
    kinds = [k for k in KINDS if any(kind == k for _, kind in counts)]
    table = Table(title=title, title_justify="left")
    table.add_column("op")
    for kind in kinds:
        table.add_column(kind, justify="right")
    table.add_column("total", justify="right", style="bold")
    for op in sorted({op for op, _ in counts}):
        row = [counts.get((op, kind), 0) for kind in kinds]
        table.add_row(op, *(str(n) if n else "" for n in row), str(sum(row)))
    if not counts:
        table.add_row("no divergences", "0")
    return table


class Summary:
    def __init__(self, console: Console | None = None, interval: float = 5.0) -> None:
        self.console = console or Console(stderr=True)
        self.interval = interval
        self.counts: Counter[tuple[str, str]] = Counter()
        self._changes = 0

    def __call__(self, d: Divergence) -> None:
        self.counts[(d.op, d.kind)] += 1
        self._changes += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def table(self) -> Table:
        return counts_table(self.counts)

    def renderable(self, what: str) -> RenderableType:
        line = Text(f"{what}: {self.total} divergences")
        return Group(line, self.table()) if self.counts else line

    def show(self, what: str) -> None:
        self.console.print(self.renderable(what), soft_wrap=True)

    async def run(self) -> None:
        shown = 0
        if self.console.is_terminal:
            live = Live(self.renderable(LIVE), console=self.console, auto_refresh=False)
            with live:
                while True:
                    await trio.sleep(0.5)
                    if self._changes != shown:
                        shown = self._changes
                        live.update(self.renderable(LIVE), refresh=True)
        while True:
            await trio.sleep(self.interval)
            if self._changes != shown:
                shown = self._changes
                self.show("cross-check so far")

    def final(self) -> None:
        self.show("cross-check finished")
