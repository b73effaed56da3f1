"""The same seed draws the same examples, whatever else the process has imported.

Besides its seeded random source, a recent hypothesis (6.170 here) now and then draws a constant
harvested from the source of every non-test module the process has imported ("local
constants"). A campaign run by ``zetcd-fuzz`` and one run inside the test suite, where zetcd's
server modules are imported too, would then draw different examples from the same seed, and
every integer added anywhere in the project would change a seeded campaign. While a campaign
runs, :func:`no_local_constants` leaves hypothesis its built-in constants only.

hypothesis has no setting for this: the hook is its module-level ``_get_local_constants``. A
hypothesis without it (an older one, or after a rename) is left as it is, and
tests/test_fuzz_seeding.py fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis.internal.conjecture import providers as _providers


def _hooks() -> tuple[Any, Any, Any] | None:
    """hypothesis' local-constant function, its cache of permitted constants, and an empty
    constant set; None when this hypothesis has no local constants to pin."""
    get = getattr(_providers, "_get_local_constants", None)
    cache = getattr(_providers, "CONSTANTS_CACHE", None)
    empty = getattr(_providers, "Constants", None)
    if get is None or cache is None or empty is None:
        return None
    return get, cache, empty()


def pinned() -> bool:
    """Whether this hypothesis can be kept from local constants."""
    return _hooks() is not None


@contextmanager
def no_local_constants() -> Iterator[None]:
    """hypothesis draws no constant from imported modules' source inside this block."""
    hooks = _hooks()
    if hooks is None:
        yield
        return
    original, cache, empty = hooks
    cache.cache.clear()  # permitted constants computed with the local ones
    _providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        _providers._get_local_constants = original
        cache.cache.clear()
