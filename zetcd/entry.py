"""The command's entry point (``zetcd`` and ``python -m zetcd``).

A SIGINT or SIGTERM that comes while Python is still importing zetcd (about 0.3 s, most of the
time before the server's own signal handling starts in runner.run) is an ordinary stop too: the
process exits 0, as a service manager expects, instead of dying of the signal. Nothing has been
started by then.
"""

from __future__ import annotations

import signal
from types import FrameType


def _stop_early(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    # for the imports only: then the defaults again (the server's handling of a second signal
    # during a slow stop relies on them), until trio's signal receiver takes over
    before = {s: signal.signal(s, _stop_early) for s in (signal.SIGTERM, signal.SIGINT)}
    from zetcd.cli import main as cli_main

    for signum, handler in before.items():
        signal.signal(signum, handler)
    cli_main()
