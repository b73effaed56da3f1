"""A seed draws the same examples whatever modules the process has imported (fuzz/seeding.py).

Without the pin, hypothesis now and then draws a constant read from the source of the
process's imported modules, so a campaign inside the test suite and one from ``zetcd-fuzz``
drew different examples from one seed (the planted test found its divergence only in a full
suite).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from fuzz import seeding

CONSTANTS = [123_456_789 + 7919 * i for i in range(200)]  # what the module below holds


def draws() -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []

    @seed(7)
    @settings(
        max_examples=300,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.lists(st.integers(0, 10**9), min_size=4, max_size=4))
    def run(values: list[int]) -> None:
        seen.append(tuple(values))

    run()
    return seen


@pytest.fixture
def constants_module(tmp_path: Path) -> Iterator[str]:
    """A module of the project's kind (not a test, not installed) full of integers."""
    name = "zetcd_seeding_constants"
    body = "".join(f"VALUE_{i} = {value}\n" for i, value in enumerate(CONSTANTS))
    (tmp_path / f"{name}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_a_seed_draws_the_same_whatever_is_imported(constants_module: str) -> None:
    assert seeding.pinned(), "this hypothesis has no local-constant hook: see fuzz/seeding.py"
    with seeding.no_local_constants():
        before = draws()
    importlib.import_module(constants_module)
    with seeding.no_local_constants():
        after = draws()
    assert after == before
    # the pin is what keeps them equal: outside it (the hook restored), the same seeded run
    # draws the new module's constants
    loose = draws()
    assert loose != before
    assert {v for example in loose for v in example} & set(CONSTANTS)
