"""Masks on an image grid, the metrics QC reports, and the safety gates (fail closed).

Gates (DESIGN.md section 5):

* brain protection: no voxel of the template brain mask, warped to the image, may be
  removed deeper than ``BRAIN_TOLERANCE_MM`` inside the brain;
* face coverage: the removed region covers >= ``MIN_FEATURE_COVERAGE`` of the warped
  face features (eyes, nose, mouth) that lie in the field of view, is not empty, and does
  not take more than ``MAX_HEAD_FRACTION`` of the head;
* registration: normalised mutual information after registration (4 mm grid, see
  :func:`bidsdeid.deface.register.similarity`) of at least ``MIN_SIMILARITY_TEMPLATE``
  (template -> anchor) or ``MIN_SIMILARITY_COREG`` (anchor -> other image); and a
  plausible geometry: the transform turns the head by at most ``MAX_ROTATION_DEG`` from
  the orientation the header gives (the initialiser searches only that far: headers
  are trusted to that level) without mirroring, and scales it within ``SCALE_RANGE``
  (an age-matched template is never 1.5 times too big or small). NMI alone does not
  separate good from broken for every head: with an infant template as the subject,
  registrations started 90 degrees off end at NMI 1.036-1.079 (see below), but
  their rotation or scale gives them away.

How the similarity thresholds were set (``benchmarks/deface.py --calibrate`` prints the
template figures; the co-registration ones come from the same heads): correct
registrations of the real heads of ../shared/data score 1.035 (XA30, 2 mm, noisy) to
1.081 (1 mm adults) and 1.16 (infant) for template -> anchor, and 1.027 for the niivue
T2w -> T1w rigid co-registration; deliberately broken ones score 1.013-1.024 (adult
heads started 90 degrees off, or registered to the 0-2 month infant template) and
1.002-1.017 (the T2w started 90 or 180 degrees off). The thresholds sit between the
worst correct and the best broken run. The margins are narrow (0.005 to 0.01): a
failed gate stops the participant (fail closed), so the cost of a threshold that is
too strict is a participant to look at, never a published face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bidsdeid.deface.result import GateResult
from bidsdeid.deface.volume import Volume, downsample, head_mask

BRAIN_TOLERANCE_MM = 1.0
MIN_FEATURE_COVERAGE = 0.95
MIN_FEATURES_IN_VIEW = 0.10  # below this fraction of the expected face, it is out of view
MAX_HEAD_FRACTION = 0.45
MAX_ROTATION_DEG = 45.0  # the initialiser trusts the header's orientation to this
SCALE_RANGE = (0.67, 1.5)  # an age-matched template is never 1.5 times off in size
MIN_SIMILARITY_TEMPLATE = 1.03
MIN_SIMILARITY_COREG = 1.021
DISTANCE_CAP_MM = 30.0


@dataclass
class GridMasks:
    """Template regions resampled onto one image grid (booleans) and the template head."""

    removed: np.ndarray
    brain: np.ndarray
    features: np.ndarray
    template: np.ndarray  # float32, template intensities on the image grid
    expected_features: float  # voxels of the whole face-feature region at this scale


def _crop(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def brain_metrics(removed: np.ndarray, brain: np.ndarray, zooms: np.ndarray
                  ) -> tuple[int, float]:
    """Removed brain voxels deeper than the tolerance, and the signed distance (mm) from
    the removed region to the brain (negative: how deep the removal goes into it)."""
    if not removed.any():
        return 0, DISTANCE_CAP_MM
    if not brain.any():
        return 0, DISTANCE_CAP_MM
    margin = int(np.ceil(DISTANCE_CAP_MM / float(zooms.min())))
    box = _crop(removed, margin)
    rem, br = removed[box], brain[box]
    inside = rem & br
    if inside.any():
        depth = ndimage.distance_transform_edt(br, sampling=zooms)
        deep = int((inside & (depth > BRAIN_TOLERANCE_MM)).sum())
        return deep, -float(depth[inside].max())
    if not br.any():
        return 0, DISTANCE_CAP_MM
    dist = ndimage.distance_transform_edt(~br, sampling=zooms)
    return 0, float(min(dist[rem].min(), DISTANCE_CAP_MM))


def geometry(world_to_template: np.ndarray) -> tuple[float, float, float, bool]:
    """Rotation angle (degrees), smallest and largest scale of a transform's linear part
    (polar decomposition), and whether it mirrors."""
    u, sv, vt = np.linalg.svd(world_to_template[:3, :3])
    rot = u @ vt
    mirrored = bool(np.linalg.det(rot) < 0)
    cos = (np.trace(rot) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1)))), float(sv.min()), \
        float(sv.max()), mirrored


def evaluate(vol: Volume, masks: GridMasks, similarity: float, min_similarity: float,
             registration_label: str, transform: np.ndarray
             ) -> tuple[dict[str, float], list[GateResult]]:
    """Metrics and gates of one image (see the module docstring). ``transform`` is the
    registration's world transform (image -> template, or anchor -> image)."""
    removed = masks.removed
    n_removed = int(removed.sum())
    deep, dist = brain_metrics(removed, masks.brain, vol.zooms)
    n_feat = int(masks.features.sum())
    covered = int((masks.features & removed).sum())
    in_view = n_feat >= MIN_FEATURES_IN_VIEW * masks.expected_features
    coverage = covered / n_feat if n_feat else 0.0
    low = downsample(Volume(removed.astype(np.float32), vol.affine), 4.0)
    head = head_mask(downsample(vol, 4.0))
    head_fraction = float((low.data[head] >= 0.5).mean()) if head.any() else 0.0
    metrics = {
        "voxels_removed": float(n_removed),
        "removed_ml": round(n_removed * vol.voxel_ml, 2),
        "brain_voxels_removed": float(deep),
        "brain_distance_mm": round(dist, 2),
        "similarity": round(similarity, 4),
        "face_feature_coverage": round(coverage, 4),
        "face_features_in_view": float(n_feat),
        "head_fraction_removed": round(head_fraction, 4),
    }
    gates = [GateResult("brain protection", deep == 0, float(deep),
                        f"== 0 brain voxels removed beyond {BRAIN_TOLERANCE_MM:g} mm",
                        "" if deep == 0 else
                        f"{deep} brain voxels would be removed (up to {-dist:.1f} mm deep)")]
    if not in_view:
        ok = head_fraction <= MAX_HEAD_FRACTION
        gates.append(GateResult("face coverage", ok, None,
                                "face in view: >= 95 % of eyes, nose, mouth removed",
                                "the face is outside the field of view" if ok else
                                f"{head_fraction:.0%} of the head would be removed"))
    else:
        problems = []
        if n_removed == 0:
            problems.append("nothing removed")
        if coverage < MIN_FEATURE_COVERAGE:
            problems.append(f"only {coverage:.0%} of eyes, nose and mouth removed")
        if head_fraction > MAX_HEAD_FRACTION:
            problems.append(f"{head_fraction:.0%} of the head removed (absurdly large)")
        gates.append(GateResult("face coverage", not problems, round(coverage, 4),
                                f">= {MIN_FEATURE_COVERAGE:.0%} of eyes, nose, mouth removed;"
                                f" not empty; <= {MAX_HEAD_FRACTION:.0%} of the head",
                                "; ".join(problems)))
    angle, smin, smax, mirrored = geometry(transform)
    metrics.update({"rotation_deg": round(angle, 2), "scale_min": round(smin, 4),
                    "scale_max": round(smax, 4)})
    problems = []
    if similarity < min_similarity:
        problems.append("images do not match")
    if angle > MAX_ROTATION_DEG or mirrored:
        problems.append(f"rotated {angle:.0f} degrees from the header's orientation")
    if smin < SCALE_RANGE[0] or smax > SCALE_RANGE[1]:
        problems.append(f"scaled {smin:.2f}-{smax:.2f}: template of the wrong size or age")
    gates.append(GateResult(
        "registration", not problems, round(similarity, 4),
        f"{registration_label} NMI >= {min_similarity:g}; rotation <= "
        f"{MAX_ROTATION_DEG:g} deg; scale {SCALE_RANGE[0]:g}-{SCALE_RANGE[1]:g}",
        "registration failed: " + "; ".join(problems) if problems else ""))
    return metrics, gates
