"""Cross-check mode, wired for the runner: the bridge, the checker, the log and the summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio
from rich.console import Console

from oracle.bridge import BridgeBackend
from oracle.crosscheck import CrossChecker, Options
from oracle.records import Divergence, DivergenceLog
from oracle.sides import Side
from oracle.summary import Summary
from zetcd.backend import Backend


@dataclass(frozen=True, slots=True)
class CrossCheckConfig:
    """``--debug-zkbridge``, ``--debug-oracle``, ``--divergence-log``."""

    zk_host: str
    zk_port: int
    answer: Side = Side.ORACLE
    divergence_log: Path | None = None
    deadline: float = 3.0


class CrossCheck:
    """Builds the checker around a candidate backend; ``start`` it in the server's nursery and
    ``finish`` it at shutdown, which returns how many divergences were recorded."""

    def __init__(
        self, candidate: Backend, config: CrossCheckConfig, console: Console | None = None
    ) -> None:
        self.config = config
        self.bridge = BridgeBackend(config.zk_host, config.zk_port)
        self.summary = Summary(console)
        self.log = DivergenceLog(config.divergence_log) if config.divergence_log else None
        sinks: list[Callable[[Divergence], None]] = [self.summary]
        if self.log is not None:
            sinks.insert(0, self.log.write)
        self.checker = CrossChecker(
            candidate, self.bridge, Options(answer=config.answer, deadline=config.deadline), sinks
        )

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.bridge.run)
        await nursery.start(self.checker.run)
        nursery.start_soon(self.summary.run)

    async def finish(self) -> int:
        await self.checker.drain(self.config.deadline + 0.5)
        self.summary.final()
        if self.log is not None:
            self.log.close()
        return self.checker.count
