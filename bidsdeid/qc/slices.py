"""Slices through a head with the defacing drawn on them.

Three planes through one point (by default where the removed region comes nearest the
brain, so a reviewer sees the tightest spot), in display conventions that match the
surface renders: sagittal with anterior to the right (like the right profile),
coronal and axial with the subject's right on the left (like the front view).
Overlays: the removed region (red, filled), the template brain mask warped to the
image (cyan outline), and for the registration overlay the template's edges (yellow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

RED = np.array([230, 40, 40], np.float32)
CYAN = np.array([0, 230, 255], np.float32)
YELLOW = np.array([255, 220, 0], np.float32)
REMOVED_ALPHA = 0.35


@dataclass(frozen=True)
class Plane:
    """A display plane: world coordinates of every pixel (rows x cols x 3, mm)."""

    name: str  # sagittal | coronal | axial
    world: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.world.shape[0], self.world.shape[1]


def planes_through(point: tuple[float, float, float], lo: np.ndarray, hi: np.ndarray,
                   pixel: float) -> list[Plane]:
    """Sagittal, coronal and axial planes through ``point`` covering the box lo..hi."""
    x0, y0, z0 = point
    xs = np.arange(hi[0], lo[0] - 1e-6, -pixel)  # subject's right (+x) on the left
    ys_up = np.arange(hi[1], lo[1] - 1e-6, -pixel)  # anterior at the top (axial)
    ys_right = np.arange(lo[1], hi[1] + 1e-6, pixel)  # anterior to the right (sagittal)
    zs = np.arange(hi[2], lo[2] - 1e-6, -pixel)  # superior at the top

    def grid(a: np.ndarray, b: np.ndarray, fixed: int, value: float,
             order: tuple[int, int]) -> np.ndarray:
        rows, cols = np.meshgrid(a, b, indexing="ij")
        out = np.empty(rows.shape + (3,), np.float64)
        out[..., order[0]] = rows
        out[..., order[1]] = cols
        out[..., fixed] = value
        return out

    return [Plane("sagittal", grid(zs, ys_right, 0, x0, (2, 1))),
            Plane("coronal", grid(zs, xs, 1, y0, (2, 0))),
            Plane("axial", grid(ys_up, xs, 2, z0, (1, 0)))]


def sample(data: np.ndarray, affine: np.ndarray, plane: Plane, order: int = 1) -> np.ndarray:
    """Values of ``data`` (on ``affine``) at every pixel of ``plane``; 0 outside."""
    inv = np.linalg.inv(affine)
    vox = plane.world @ inv[:3, :3].T + inv[:3, 3]
    coords = np.moveaxis(vox, -1, 0)
    return ndi.map_coordinates(np.asarray(data), coords, order=order, mode="constant",
                               cval=0.0, prefilter=False).astype(np.float32)


def grey(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Intensities mapped through ``window`` to RGB float 0..255."""
    lo, hi = window
    scaled = np.clip((values - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    return np.repeat(scaled[..., None], 3, axis=2).astype(np.float32)


def outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def draw(rgb: np.ndarray, *, removed: np.ndarray | None = None,
         brain: np.ndarray | None = None, edges: np.ndarray | None = None) -> np.ndarray:
    """Overlays on an RGB float image; returns uint8."""
    out = rgb.copy()
    if removed is not None and removed.any():
        out[removed] = (1 - REMOVED_ALPHA) * out[removed] + REMOVED_ALPHA * RED
        out[outline(removed)] = RED
    if edges is not None:
        out[edges] = YELLOW
    if brain is not None and brain.any():
        out[outline(brain)] = CYAN
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def template_edges(template: np.ndarray) -> np.ndarray:
    """Edges of a template slice (Canny on the intensity-normalised slice)."""
    from skimage.feature import canny

    if not np.any(template > 0):
        return np.zeros(template.shape, bool)
    top = float(np.percentile(template[template > 0], 99))
    norm = np.clip(template / max(top, 1e-6), 0, 1)
    return canny(norm, sigma=1.5, low_threshold=0.05, high_threshold=0.15)


def intensity_window(values: np.ndarray) -> tuple[float, float]:
    """A display window from the head's intensities (0 .. 99.5th percentile)."""
    positive = values[values > 0]
    if positive.size == 0:
        return 0.0, 1.0
    return 0.0, float(np.percentile(positive, 99.5))
