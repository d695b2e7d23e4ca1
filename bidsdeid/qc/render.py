"""Shaded 3D surface renders of a head, seen from fixed directions.

The head surface (the shell of :func:`bidsdeid.qc.volume.head_mask`) is projected
orthographically onto the image plane of each view; a z-buffer keeps the first hit
along every ray (the surface point nearest the camera), which gives a depth map. The
depth map is shaded with one fixed light (Lambert), so renders before and after
defacing that share a :class:`Camera` show the same head under the same light from
the same place, and differ only where defacing changed the surface.

No display, no OpenGL: numpy and scipy only, about 0.1 s per view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from bidsdeid.qc.volume import RasGrid


@dataclass(frozen=True)
class View:
    """A camera direction around the vertical axis."""

    name: str  # file-name-safe id
    azimuth: float  # degrees; 0 = in front of the face, +90 = at the subject's right
    title: str  # caption


VIEWS: tuple[View, ...] = (
    View("front", 0.0, "front"),
    View("right45", 45.0, "right 45°"),
    View("left45", -45.0, "left 45°"),
    View("right", 90.0, "right profile"),
    View("left", -90.0, "left profile"),
)

LIGHT = np.array([0.0, 0.5, 1.0]) / np.linalg.norm([0.0, 0.5, 1.0])
"""Light direction in camera space (right, up, towards the camera): from above and in
front, so eye sockets and the nose cast the shading a face detector expects, and the
left and right views are lit alike."""

AMBIENT = 0.12


@dataclass(frozen=True)
class Camera:
    """Where every view of one image looks: a sphere around the head (world mm)."""

    center: tuple[float, float, float]
    radius: float
    pixel: float  # mm per pixel

    @property
    def size(self) -> int:
        return int(np.ceil(2 * self.radius / self.pixel)) + 1

    @classmethod
    def around(cls, points: np.ndarray, pixel: float) -> Camera:
        """A camera whose views hold every point of ``points`` (N x 3, world mm)."""
        if len(points) == 0:
            return cls((0.0, 0.0, 0.0), 100.0, pixel)
        lo, hi = points.min(axis=0), points.max(axis=0)
        center = (lo + hi) / 2
        radius = float(np.sqrt(((points - center) ** 2).sum(axis=1).max())) + 2 * pixel
        return cls((float(center[0]), float(center[1]), float(center[2])), radius, pixel)


@dataclass
class SurfaceRender:
    """One view of one head: the shaded image and the depth map behind it."""

    view: View
    image: np.ndarray  # uint8, rows top to bottom; background 0
    depth: np.ndarray  # float32 mm towards the camera from the camera centre; NaN = air
    pixel: float  # mm per pixel

    @property
    def foreground(self) -> np.ndarray:
        return np.isfinite(self.depth)


def surface_points(mask: np.ndarray, grid: RasGrid) -> np.ndarray:
    """World coordinates (N x 3, mm, float32) of the voxels on the surface of ``mask``."""
    if not mask.any():
        return np.zeros((0, 3), np.float32)
    # 3x3x3 erosion as a separable minimum filter (same result, twice as fast)
    inner = ndi.minimum_filter(mask.view(np.uint8), size=3, mode="constant", cval=0) > 0
    idx = np.argwhere(mask & ~inner).astype(np.float32)
    return idx * np.float32(grid.spacing) + np.asarray(grid.origin, np.float32)


def _axes(view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen right, screen up, and towards-the-camera unit vectors in world space."""
    t = np.deg2rad(view.azimuth)
    toward = np.array([np.sin(t), np.cos(t), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(up, toward)
    return right, up, toward


def render_view(points: np.ndarray, camera: Camera, view: View) -> SurfaceRender:
    """Project ``points`` onto the image plane of ``view``; shade the first-hit depth."""
    n = camera.size
    flat_depth = np.full(n * n, -np.inf, np.float32)
    if len(points):
        right, up, toward = _axes(view)
        rel = points - np.asarray(camera.center, np.float32)
        cols = np.floor((rel @ right.astype(np.float32) + camera.radius) / camera.pixel)
        rows = np.floor((camera.radius - rel @ up.astype(np.float32)) / camera.pixel)
        inside = (cols >= 0) & (cols < n) & (rows >= 0) & (rows < n)
        flat = (rows[inside] * n + cols[inside]).astype(np.intp)
        np.maximum.at(flat_depth, flat, (rel @ toward.astype(np.float32))[inside])
    depth = flat_depth.reshape(n, n)
    hit = np.isfinite(depth)
    depth = _fill_pinholes(depth, hit)
    image = _shade(depth, camera.pixel)
    depth = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    return SurfaceRender(view, image, depth, camera.pixel)


def _fill_pinholes(depth: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Fill single background pixels inside the surface (projection aliasing)."""
    if not hit.any():
        return depth
    closed = ndi.binary_closing(hit, structure=np.ones((3, 3), bool), border_value=0)
    holes = closed & ~hit
    if not holes.any():
        return depth
    neighbour = ndi.maximum_filter(np.where(hit, depth, -np.inf), size=3)
    return np.where(holes, neighbour, depth)


def _shade(depth: np.ndarray, pixel: float) -> np.ndarray:
    """Lambert shading of a depth map under :data:`LIGHT`; air stays black."""
    fg = np.isfinite(depth)
    if not fg.any():
        return np.zeros(depth.shape, np.uint8)
    # Give air the depth of the nearest surface pixel so the rim is not shaded as a cliff.
    _, (ri, ci) = ndi.distance_transform_edt(~fg, return_indices=True)
    filled = depth[ri, ci]
    smooth = ndi.gaussian_filter(filled, 1.0)
    d_row, d_col = np.gradient(smooth, pixel)
    # Camera frame: x right (columns), y up (rows go down), z towards the camera.
    nx, ny, nz = -d_col, d_row, np.ones_like(d_col)
    lambert = (nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2]) / np.sqrt(nx**2 + ny**2 + 1.0)
    value = AMBIENT + (1 - AMBIENT) * np.clip(lambert, 0.0, 1.0)
    return np.where(fg, np.round(value * 255), 0).astype(np.uint8)


def render_views(points: np.ndarray, camera: Camera,
                 views: tuple[View, ...] = VIEWS) -> dict[str, SurfaceRender]:
    """Every view of one surface, by view name."""
    return {v.name: render_view(points, camera, v) for v in views}
