"""The one place antspyx is imported: lazily, with one ITK thread and a fixed seed.

``import ants`` takes about 2 s, so only the functions that register import it, via
:func:`ants`. Measured here: ANTs' Mattes-MI affine with 2 ITK threads gives a slightly
different transform on every call (threads add up the metric in a varying order; 0.02 mm
differences, enough to flip boundary voxels of a mask), with 1 thread it repeats bit for
bit. Defaced outputs must be byte-identical between runs, so registration runs with
exactly one ITK thread and a fixed seed; the registrations are small (4 mm then 2 mm),
and parallelism comes from running images and participants side by side (--nprocs).
ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, so it is set before the import.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType

SEED = 20240521
"""Seed of ANTs' random metric sampling (``--random-seed``)."""

ITK_THREADS = 1

_ANTS: ModuleType | None = None


def ants() -> ModuleType:
    """Import antspyx once, with one ITK thread and the seed set."""
    global _ANTS
    if _ANTS is None:
        if "ants" in sys.modules and os.environ.get(
                "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS") != str(ITK_THREADS):
            logging.getLogger("bidsdeid").warning(
                "antspyx was imported before bidsdeid.deface set one ITK thread: "
                "registrations may not repeat bit for bit in this process")
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(ITK_THREADS)
        import ants as _ants
        import ants.config

        # ants.registration passes --random-seed when this is set; we do not switch on
        # its "deterministic" mode, which forbids every non-"Repro" transform type.
        ants.config._random_seed = SEED
        _ANTS = _ants
    return _ANTS
