"""Images on one isotropic, axis-aligned RAS grid, and the head inside them.

Every render and check looks at a head the same way whatever the scanner wrote in the
header: the image is resampled (trilinear) onto a grid whose axes are the world axes
(x = right, y = anterior, z = superior, in mm, as the NIfTI affine says), so oblique
and flipped acquisitions come out upright. The "after" image of a defacing is put on
the grid of its "before" image and cut at the threshold of the "before" image, so the
two renders differ only where defacing changed the head.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

MAX_GRID_VOXELS = 176
"""The grid's longest side in voxels (about 1.4 mm for a 250 mm field of view): fine
enough for a face detector, small enough to render ten views in about a second."""

MIN_SPACING_MM = 1.0
HEAD_FRACTION_OF_OTSU = 0.4
"""The skin is darker than the bulk of the head in every contrast; Otsu's threshold
splits air from tissue, and 40 % of it keeps thin, dim skin (nose, lips) closed."""


@dataclass(frozen=True)
class RasGrid:
    """An axis-aligned grid in world (RAS) millimetres: ``world = origin + spacing * ijk``."""

    shape: tuple[int, int, int]
    spacing: float
    origin: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        aff = np.diag([self.spacing, self.spacing, self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def slab(self, start: int, stop: int) -> RasGrid:
        """Rows ``start`` to ``stop`` (first axis) of this grid, as a grid."""
        return RasGrid((stop - start, self.shape[1], self.shape[2]), self.spacing,
                       (self.origin[0] + start * self.spacing, self.origin[1], self.origin[2]))

    @classmethod
    def covering(cls, shape: tuple[int, ...], affine: np.ndarray,
                 max_voxels: int = MAX_GRID_VOXELS,
                 box: tuple[np.ndarray, np.ndarray] | None = None) -> RasGrid:
        """The smallest grid holding every voxel centre of an image of ``shape``, or
        only the part of it inside ``box`` (world lo, hi). The spacing comes from the
        whole field of view either way, so it does not depend on what ``box`` finds."""
        lo, hi = _world_extent(shape, affine)
        spacing = max(MIN_SPACING_MM, float((hi - lo).max()) / (max_voxels - 1))
        last = np.floor((hi - lo) / spacing).astype(int)  # index of the last voxel per axis
        start, stop = np.zeros(3, int), last
        if box is not None:  # a sub-grid of the whole grid: the same voxel centres
            b_start = np.clip(np.floor((np.asarray(box[0]) - lo) / spacing).astype(int), 0, last)
            b_stop = np.clip(np.ceil((np.asarray(box[1]) - lo) / spacing).astype(int), 0, last)
            if np.all(b_stop > b_start):
                start, stop = b_start, b_stop
        origin = lo + start * spacing
        dims = stop - start + 1
        return cls((int(dims[0]), int(dims[1]), int(dims[2])), spacing,
                   (float(origin[0]), float(origin[1]), float(origin[2])))


def _world_extent(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ext = [(0, n - 1) for n in shape[:3]]
    corners = np.array([[i, j, k, 1.0] for i in ext[0] for j in ext[1] for k in ext[2]]).T
    world = (affine @ corners)[:3]
    return world.min(axis=1), world.max(axis=1)


HEAD_BOX_MARGIN_MM = 12.0


def head_box(data: np.ndarray, affine: np.ndarray, step: int = 4
             ) -> tuple[np.ndarray, np.ndarray] | None:
    """World bounding box of the head, from every ``step``-th voxel (cheap), with a
    margin: the renders need only this part of the field of view."""
    from skimage.filters import threshold_otsu

    coarse = np.asarray(data[::step, ::step, ::step], dtype=np.float32)
    positive = coarse[coarse > 0]
    if positive.size < 100:
        return None
    top = float(np.percentile(positive, 99.5))
    threshold = HEAD_FRACTION_OF_OTSU * float(threshold_otsu(np.clip(coarse, 0, top)))
    mask = largest_component(coarse > threshold)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    lo_i, hi_i = idx.min(axis=0) * step, idx.max(axis=0) * step
    corners = np.array([[i, j, k, 1.0] for i in (lo_i[0] - step, hi_i[0] + step)
                        for j in (lo_i[1] - step, hi_i[1] + step)
                        for k in (lo_i[2] - step, hi_i[2] + step)]).T
    world = (affine @ corners)[:3]
    return (world.min(axis=1) - HEAD_BOX_MARGIN_MM, world.max(axis=1) + HEAD_BOX_MARGIN_MM)


def load_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 3D volume of a NIfTI file as float32, and its affine."""
    img = nib.load(str(path))
    shape = img.shape  # type: ignore[attr-defined]
    if len(shape) < 3:
        raise ValueError(f"{Path(path).name}: not a 3D image")
    proxy = img.dataobj  # type: ignore[attr-defined]
    # scaled straight to float32 (float64 first costs a copy of twice the size); only
    # the first volume of a 4D file is read
    data = (np.asanyarray(proxy, dtype=np.float32) if len(shape) == 3
            else np.asarray(proxy[(slice(None),) * 3 + (0,) * (len(shape) - 3)], np.float32))
    # C order: nibabel hands over Fortran-ordered arrays, on which scipy's resampling
    # runs about 4x slower (it walks the input in C order)
    volume = np.ascontiguousarray(data)
    if not np.isfinite(volume).all():
        volume = np.nan_to_num(volume, nan=0.0, posinf=0.0, neginf=0.0)
    return volume, np.asarray(img.affine, float)  # type: ignore[attr-defined]


def _axis_aligned(affine: np.ndarray) -> tuple[list[int], list[bool]] | None:
    """For an image whose voxel axes run along the world axes (any order, any sign),
    the world axis of each voxel axis and whether it runs backwards; else None."""
    rot = affine[:3, :3]
    axes, flips = [], []
    for col in range(3):
        v = rot[:, col]
        k = int(np.argmax(np.abs(v)))
        if np.abs(v[k]) < 1e-6 or np.any(np.abs(np.delete(v, k)) > 1e-4 * np.abs(v[k])):
            return None
        axes.append(k)
        flips.append(bool(v[k] < 0))
    return (axes, flips) if sorted(axes) == [0, 1, 2] else None


def resample(data: np.ndarray, affine: np.ndarray, grid: RasGrid, order: int = 1,
             *, allow_fast: bool = True, threads: int = 1) -> np.ndarray:
    """``data`` (on ``affine``) resampled onto ``grid``; outside the image is 0.

    An image stored along the world axes (the usual case) is flipped and transposed
    into RAS order first, which turns the resampling into a per-axis zoom and shift
    (several times faster than a general affine resampling). With ``threads`` > 1 the
    grid is cut into slabs resampled side by side (each voxel is interpolated alone, so
    the result is the same)."""
    data = np.ascontiguousarray(data, dtype=np.float32)  # see load_image
    affine = np.asarray(affine, float)
    aligned = _axis_aligned(affine) if allow_fast else None
    if aligned is not None:
        data, affine = _to_ras_order(data, affine, *aligned)
    return _by_slabs(grid.shape[0], threads, lambda a, b: _transform(
        data, affine, grid.slab(a, b), order, aligned is not None))


def _to_ras_order(data: np.ndarray, affine: np.ndarray, axes: list[int], flips: list[bool]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned image flipped and transposed so its voxel axes run along world
    x, y, z; and its affine then (diagonal)."""
    index = np.eye(4)
    for vox_axis, flip in enumerate(flips):
        if flip:
            data = np.flip(data, axis=vox_axis)
            step = np.eye(4)
            step[vox_axis, vox_axis] = -1
            step[vox_axis, 3] = data.shape[vox_axis] - 1
            index = index @ step
    order_of = [axes.index(w) for w in range(3)]  # voxel axis along world x, y, z
    data = np.ascontiguousarray(np.transpose(data, order_of))
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    for w, vox_axis in enumerate(order_of):
        perm[vox_axis, w] = 1
    return data, affine @ index @ perm


def _transform(data: np.ndarray, affine: np.ndarray, grid: RasGrid, order: int,
               diagonal: bool) -> np.ndarray:
    matrix = np.linalg.inv(affine) @ grid.affine
    if diagonal:
        with warnings.catch_warnings():  # a 1-D matrix means zoom + shift, as intended
            warnings.simplefilter("ignore", UserWarning)
            out = ndi.affine_transform(data, np.diag(matrix)[:3], offset=matrix[:3, 3],
                                       output_shape=grid.shape, order=order, mode="constant",
                                       cval=0.0, prefilter=False)
    else:
        out = ndi.affine_transform(data, matrix[:3, :3], offset=matrix[:3, 3],
                                   output_shape=grid.shape, order=order, mode="constant",
                                   cval=0.0, prefilter=False)
    return out.astype(np.float32, copy=False)


def _slabs(n: int, threads: int, least: int = 16) -> list[tuple[int, int]]:
    """``n`` rows cut into at most ``threads`` slabs of at least ``least`` rows."""
    k = max(1, min(threads, n // least))
    cuts = [round(i * n / k) for i in range(k + 1)]
    return list(pairwise(cuts))


def _by_slabs(n: int, threads: int, rows: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """``rows(start, stop)`` for the slabs of ``n`` rows, side by side, joined."""
    slabs = _slabs(n, threads)
    if len(slabs) == 1:
        return rows(0, n)
    with ThreadPoolExecutor(len(slabs)) as pool:
        return np.concatenate(list(pool.map(lambda ab: rows(*ab), slabs)))


CHANGE_MARGIN_VOXELS = 6
"""Grid voxels around a change that resampling and smoothing can reach (trilinear: 1,
Gaussian of 1 voxel truncated at 4: 4, and one for rounding)."""


def resample_changes(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                     resampled_before: np.ndarray, grid: RasGrid) -> np.ndarray:
    """``after`` on ``grid``, computed only where it differs from ``before``: defacing
    changes a corner of the image, so the rest is copied from ``resampled_before``.
    Same result as resampling ``after`` whole (resampling is local)."""
    (b, b_aff), (a, a_aff) = before, after
    if b.shape != a.shape or not np.allclose(b_aff, a_aff, atol=1e-4):
        return resample(a, a_aff, grid)
    changed = b != a
    if not changed.any():
        return resampled_before.copy()
    per_axis = [np.flatnonzero(changed.any(axis=tuple(x for x in range(3) if x != ax)))
                for ax in range(3)]
    lo_v = np.array([p[0] for p in per_axis]) - 1
    hi_v = np.array([p[-1] for p in per_axis]) + 1
    corners = np.array([[i, j, k, 1.0] for i in (lo_v[0], hi_v[0]) for j in (lo_v[1], hi_v[1])
                        for k in (lo_v[2], hi_v[2])]).T
    world = (a_aff @ corners)[:3]
    origin = np.asarray(grid.origin)
    lo_g = np.floor((world.min(axis=1) - origin) / grid.spacing).astype(int)
    hi_g = np.ceil((world.max(axis=1) - origin) / grid.spacing).astype(int)
    lo_g = np.clip(lo_g - CHANGE_MARGIN_VOXELS, 0, np.array(grid.shape) - 1)
    hi_g = np.clip(hi_g + CHANGE_MARGIN_VOXELS, 0, np.array(grid.shape) - 1)
    sub = RasGrid((int(hi_g[0] - lo_g[0] + 1), int(hi_g[1] - lo_g[1] + 1),
                   int(hi_g[2] - lo_g[2] + 1)), grid.spacing,
                  (float(origin[0] + lo_g[0] * grid.spacing),
                   float(origin[1] + lo_g[1] * grid.spacing),
                   float(origin[2] + lo_g[2] * grid.spacing)))
    out = resampled_before.copy()
    out[lo_g[0]:hi_g[0] + 1, lo_g[1]:hi_g[1] + 1, lo_g[2]:hi_g[2] + 1] = resample(a, a_aff, sub)
    return out


SMOOTH_REACH = 4
"""Voxels a 1-voxel Gaussian reaches (scipy truncates it at 4 sigma)."""


def smooth(volume: np.ndarray, threads: int = 1) -> np.ndarray:
    """A light blur (1 voxel) so noise does not punch holes in the skin. With ``threads``
    > 1, slabs are blurred side by side, each with the rows its edge voxels reach (the
    same sums in the same order: the same result)."""
    def blur(v: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(v, 1.0, mode="constant", truncate=SMOOTH_REACH
                                   ).astype(np.float32, copy=False)

    n, r = volume.shape[0], SMOOTH_REACH

    def rows(a: int, b: int) -> np.ndarray:
        lo, hi = max(0, a - r), min(n, b + r)
        return blur(volume[lo:hi])[a - lo:b - lo]

    return _by_slabs(n, threads, rows)


def head_threshold(smoothed: np.ndarray) -> float:
    """The intensity that separates head from air (see HEAD_FRACTION_OF_OTSU)."""
    from skimage.filters import threshold_otsu

    positive = smoothed[smoothed > 0]
    if positive.size < 100:
        return float("inf")
    top = float(np.percentile(positive, 99.5))
    sample = np.clip(smoothed[:: 2, :: 2, :: 2], 0, top)
    otsu = float(threshold_otsu(sample))
    return HEAD_FRACTION_OF_OTSU * otsu


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (drops noise and ghost specks)."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def head_mask(smoothed: np.ndarray, threshold: float) -> np.ndarray:
    """Voxels of the head: above ``threshold`` and in the largest connected piece."""
    return largest_component(smoothed > threshold)
