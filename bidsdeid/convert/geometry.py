"""Slice geometry of a series, checked before dcm2niix sees it.

dcm2niix converts what it is given and exits 0: an fMRI series with one slice file
missing becomes a single volume of 149 slices; a 3D stack without one slice becomes a
volume whose 2 mm step is stored in a 1 mm grid (plus an ``_Eq`` copy); slices in two
orientations are stacked into one meaningless volume. A wrong image must never be
published as if it were right, so every series to convert is checked here first:

* every slice (frame) has the same ImageOrientationPatient (within 0.01);
* every slice position along the slice normal holds the same number of images
  (volumes x echoes x parts): one fewer somewhere means a slice is missing there;
* the positions are evenly spaced (each step within 25 % of the median step): a step
  of twice the median is a missing slice, a gap in the stack.

A series that fails is left out and reported (bad input, exit code 65); the other
series of the participant go on. Messages give counts and millimetres, never a header
value.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bidsdeid.convert.facts import FileFacts

ORIENTATION_TOLERANCE = 0.01  # direction cosines
POSITION_TOLERANCE_MM = 0.05  # two positions closer than this along the normal are one
STEP_TOLERANCE = 0.25  # a step may differ from the median step by this fraction


def _orientations(facts: Iterable[FileFacts]) -> list[np.ndarray]:
    """Distinct orientations (clustered within the tolerance)."""
    found: list[np.ndarray] = []
    for f in facts:
        for cosines in f.orientations:
            v = np.asarray(cosines, dtype=float)
            if not any(np.max(np.abs(v - u)) <= ORIENTATION_TOLERANCE for u in found):
                found.append(v)
    return found


def _slice_counts(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positions along the normal (sorted) and how many images each holds."""
    order = np.sort(distances)
    starts = np.concatenate([[True], np.diff(order) > POSITION_TOLERANCE_MM])
    group = np.cumsum(starts) - 1
    centres = np.array([order[group == g].mean() for g in range(group[-1] + 1)])
    counts = np.bincount(group)
    return centres, counts


def problem(facts: list[FileFacts]) -> str | None:
    """Why the slices of one series cannot make a correct image, or None."""
    orientations = _orientations(facts)
    if len(orientations) > 1:
        return (f"its slices have {len(orientations)} different orientations; one image "
                "would mix them")
    positions = np.array([p for f in facts for p in f.positions], dtype=float)
    if not orientations or len(positions) < 3:
        return None
    row, col = orientations[0][:3], orientations[0][3:]
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 0.5:
        return None  # degenerate orientation: nothing sensible to check
    distances = positions @ (normal / np.linalg.norm(normal))
    centres, counts = _slice_counts(distances)
    if counts.min() != counts.max():
        short = int(np.sum(counts < counts.max()))
        return (f"{short} of {len(counts)} slice positions have fewer images than the others "
                f"({int(counts.min())} instead of {int(counts.max())}): slices are missing")
    if len(centres) < 3:
        return None
    steps = np.diff(centres)
    median = float(np.median(steps))
    off = np.abs(steps - median) > STEP_TOLERANCE * median
    if np.any(off):
        worst = float(steps[np.argmax(np.abs(steps - median))])
        return (f"its slice positions are not evenly spaced (a step of {worst:.2f} mm where "
                f"the others are {median:.2f} mm): a slice is missing or the stack has a gap")
    return None
