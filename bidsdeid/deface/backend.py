"""The one place antspyx is imported: lazily, with a fixed thread count and seed.

``import ants`` takes about 2 s, so only the functions that register import it, via
:func:`ants`. ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, when its thread
pool is first used, so the count is fixed before the first import and stays fixed for
the process: registration with a fixed seed and a fixed thread count repeats bit for
bit, which is what makes defaced outputs byte-identical between runs.
"""

from __future__ import annotations

import os
from types import ModuleType

SEED = 20240521
"""Seed of ANTs' random metric sampling (``--random-seed``)."""

DEFAULT_THREADS = 2

_ANTS: ModuleType | None = None


def threads() -> int:
    """The registration thread count of this process (set before ``ants`` is imported)."""
    try:
        return max(1, int(os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "")))
    except ValueError:
        return DEFAULT_THREADS


def set_threads(n: int) -> None:
    """Fix the ITK thread count; only effective before the first registration."""
    if _ANTS is None:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(1, int(n)))


def ants() -> ModuleType:
    """Import antspyx once, with the thread count fixed and the seed set."""
    global _ANTS
    if _ANTS is None:
        os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(DEFAULT_THREADS))
        import ants as _ants
        import ants.config

        # ants.registration passes --random-seed when this is set; we do not switch on
        # its "deterministic" mode, which forbids every non-"Repro" transform type.
        ants.config._random_seed = SEED
        _ANTS = _ants
    return _ANTS
