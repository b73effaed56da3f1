"""A time limit on each phase (setup, call, teardown) of a pytest item, by SIGALRM.

Shared by the suite's conftest and the plugin that runs kazoo's own tests: a phase that runs past
its limit dumps every thread's stack to stderr and fails with :class:`PhaseTimeout`, instead of
hanging the run.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from types import FrameType
from typing import Any

import pytest


class PhaseTimeout(Exception):
    """A test phase ran past its time limit."""


@contextlib.contextmanager
def alarm(item: pytest.Item, phase: str, seconds: float) -> Iterator[None]:
    """Raise PhaseTimeout in the main thread if the block runs longer than ``seconds`` (0: no
    limit; off the main thread, where signals cannot be delivered, no limit either)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        raise PhaseTimeout(f"{item.nodeid}: {phase} took longer than {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def phase_hooks(limit: Callable[[pytest.Item], float]) -> tuple[Any, Any, Any]:
    """The pytest_runtest_setup/call/teardown wrappers that apply ``limit(item)`` to each
    phase; assign them to those names in a conftest or plugin module."""

    def wrap(phase: str) -> Any:
        @pytest.hookimpl(wrapper=True)
        def hook(item: pytest.Item) -> Generator[None, None, None]:
            with alarm(item, phase, limit(item)):
                return (yield)

        return hook

    return wrap("setup"), wrap("call"), wrap("teardown")
