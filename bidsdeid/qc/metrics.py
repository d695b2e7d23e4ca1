"""The numbers of a defacing, recomputed by QC from the files themselves.

QC does not take the defacing stage's word for it: it counts the removed voxels, the
brain voxels among them and the gap between the removed region and the brain on the
image's own grid, and checks that nothing changed outside the removed region. The
defacing stage's own figures (registration similarity, ...) are shown beside these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree


@dataclass
class Closest:
    """Where the removed region comes nearest the brain (world mm)."""

    distance_mm: float
    brain_point: tuple[float, float, float]


SEARCH_MM = 60.0
"""Only removed voxels this close to the brain's bounding box are searched: a farther
gap is reported as at least this much."""


def _boundary_index(mask: np.ndarray, box: tuple[np.ndarray, np.ndarray] | None = None,
                    field_edge_is_surface: bool = True) -> np.ndarray:
    """Voxel indices of the surface of ``mask`` (within ``box``, lo..hi inclusive)."""
    lo, hi = box if box is not None else (np.zeros(3, int), np.array(mask.shape) - 1)
    lo = np.maximum(lo - 1, 0)
    hi = np.minimum(hi + 2, mask.shape)
    crop = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    inner = ndi.binary_erosion(crop, border_value=0 if field_edge_is_surface else 1)
    return np.argwhere(crop & ~inner) + lo


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    per_axis = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
                for ax in range(3)]
    if any(p.size == 0 for p in per_axis):
        return None
    return np.array([p[0] for p in per_axis]), np.array([p[-1] for p in per_axis])


def closest_approach(removed: np.ndarray, brain: np.ndarray,
                     affine: np.ndarray) -> Closest | None:
    """Smallest distance between a removed voxel and a brain voxel (0 if they meet; at
    least :data:`SEARCH_MM` when nothing removed comes that close to the brain)."""
    brain_box = _bbox(brain)
    if brain_box is None or not removed.any():
        return None
    overlap = removed & brain
    if overlap.any():
        p = affine[:3, :3] @ np.argwhere(overlap)[0] + affine[:3, 3]
        return Closest(0.0, (float(p[0]), float(p[1]), float(p[2])))
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    reach = np.ceil(SEARCH_MM / zooms).astype(int)
    lo = np.maximum(brain_box[0] - reach, 0)
    hi = np.minimum(brain_box[1] + reach, np.array(removed.shape) - 1)
    rem_idx = _boundary_index(removed, (lo, hi), field_edge_is_surface=False)
    brn_idx = _boundary_index(brain, brain_box)
    centre = affine[:3, :3] @ ((brain_box[0] + brain_box[1]) / 2) + affine[:3, 3]
    if rem_idx.size == 0:
        return Closest(SEARCH_MM, (float(centre[0]), float(centre[1]), float(centre[2])))
    rem = rem_idx @ affine[:3, :3].T + affine[:3, 3]
    brn = brn_idx @ affine[:3, :3].T + affine[:3, 3]
    dist, which = cKDTree(brn).query(rem, k=1, distance_upper_bound=SEARCH_MM)
    k = int(np.argmin(dist))
    if not np.isfinite(dist[k]):
        return Closest(SEARCH_MM, (float(centre[0]), float(centre[1]), float(centre[2])))
    p = brn[int(which[k])]
    return Closest(float(dist[k]), (float(p[0]), float(p[1]), float(p[2])))


def defacing_metrics(original: np.ndarray | None, defaced: np.ndarray | None,
                     removed: np.ndarray | None, brain: np.ndarray | None,
                     affine: np.ndarray) -> tuple[dict[str, float], Closest | None]:
    """Voxels removed, removed volume (mL), brain voxels removed, distance from the
    removed region to the brain (mm), voxels changed outside the removed region."""
    out: dict[str, float] = {}
    closest = None
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    if removed is not None:
        out["voxels_removed"] = float(np.count_nonzero(removed))
        out["removed_ml"] = round(out["voxels_removed"] * voxel_ml, 2)
        if brain is not None and brain.shape == removed.shape:
            out["brain_voxels_removed"] = float(np.count_nonzero(removed & brain))
            closest = closest_approach(removed, brain, affine)
            if closest is not None:
                out["brain_distance_mm"] = round(closest.distance_mm, 1)
        if (original is not None and defaced is not None
                and original.shape == defaced.shape == removed.shape):
            outside = (original != defaced) & ~removed
            # tolerate rounding of a rescaled copy (1 part in 1000), nothing more
            a, b = original[outside], defaced[outside]
            out["voxels_changed_outside_mask"] = float(np.count_nonzero(
                ~np.isclose(a, b, rtol=1e-3, atol=1e-3)))
    return out, closest


def template_correlation(image: np.ndarray, template: np.ndarray) -> float | None:
    """Pearson correlation of the image and the template on the image grid, where the
    template has signal: a plain check that the registration put the head on the head
    (T2w against a T1w template correlates negatively: the magnitude is what counts)."""
    if image.shape != template.shape:
        return None
    step = (slice(None, None, 2),) * 3  # every 8th voxel: plenty for a correlation
    img, tpl = image[step], template[step]
    where = tpl > 0
    if np.count_nonzero(where) < 1000:
        return None
    a = img[where].astype(np.float64)
    b = tpl[where].astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)
