"""What defacing reports about each image: the contract between ``deface`` and ``qc``.

The deface stage appends one :class:`DefaceResult` per anatomical image to
``ctx.results["deface"]``; the QC stage renders and checks them and may add gates
(the face-visibility check). Paths under ``work`` are private (they show a face).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GateResult:
    """One safety check. A failed gate keeps the participant out of OUTPUT_DIR."""

    name: str  # e.g. "brain protection", "face coverage", "registration", "face visible"
    passed: bool
    value: float | None
    threshold: str  # human-readable rule, e.g. "== 0 voxels beyond 1 mm"
    message: str = ""


@dataclass
class DefaceResult:
    """Defacing of one anatomical image (see the module docstring)."""

    rel_path: str  # OUTPUT_DIR-relative path of the (defaced) image
    suffix: str  # T1w, T2w, ...
    role: str  # "anchor" (registered to the template) | "coregistered" | "not defaced"
    original: Path  # un-defaced image (private work dir)
    defaced: Path | None  # staged defaced image (None if not written)
    removed_mask: Path | None  # 1 = voxel removed, on the image grid (private work dir)
    brain_mask: Path | None  # template brain mask warped to the image grid (work dir)
    template_warped: Path | None  # template head resampled to the image grid (overlay)
    mask_derivative: str | None = None  # OUTPUT_DIR-relative path of the deface mask
    template: str = ""  # e.g. "pydeface", "MNIInfant:cohort-1"
    template_contrast: str = ""  # T1w | T2w
    anchor: str | None = None  # rel_path of the anchor, for co-registered images
    age_months: float | None = None
    age_source: str = ""  # "--age-months", "sessions.tsv", ..., "none (adult assumed)"
    metrics: dict[str, float] = field(default_factory=dict)
    # voxels_removed, removed_ml, brain_voxels_removed, brain_distance_mm, similarity, ...
    gates: list[GateResult] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(g.passed for g in self.gates)
