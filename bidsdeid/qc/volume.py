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
from dataclasses import dataclass
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

    @classmethod
    def covering(cls, shape: tuple[int, ...], affine: np.ndarray,
                 max_voxels: int = MAX_GRID_VOXELS) -> RasGrid:
        """The smallest grid holding every voxel centre of an image of ``shape``."""
        ext = [(0, n - 1) for n in shape[:3]]
        corners = np.array([[i, j, k, 1.0] for i in ext[0] for j in ext[1] for k in ext[2]]).T
        world = (affine @ corners)[:3]
        lo, hi = world.min(axis=1), world.max(axis=1)
        spacing = max(MIN_SPACING_MM, float((hi - lo).max()) / (max_voxels - 1))
        dims = tuple(int(n) for n in np.floor((hi - lo) / spacing).astype(int) + 1)
        return cls((dims[0], dims[1], dims[2]), spacing, (float(lo[0]), float(lo[1]),
                                                          float(lo[2])))


def load_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 3D volume of a NIfTI file as float32, and its affine."""
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    while data.ndim > 3:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{Path(path).name}: not a 3D image")
    return np.nan_to_num(np.asarray(data, dtype=np.float32)), np.asarray(img.affine, float)


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
             *, allow_fast: bool = True) -> np.ndarray:
    """``data`` (on ``affine``) resampled onto ``grid``; outside the image is 0.

    An image stored along the world axes (the usual case) is flipped and transposed
    into RAS order first, which turns the resampling into a per-axis zoom and shift
    (several times faster than a general affine resampling)."""
    data = np.asarray(data, dtype=np.float32)
    affine = np.asarray(affine, float)
    aligned = _axis_aligned(affine) if allow_fast else None
    if aligned is not None:
        axes, flips = aligned
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
        affine = affine @ index @ perm
        matrix = np.linalg.inv(affine) @ grid.affine
        with warnings.catch_warnings():  # a 1-D matrix means zoom + shift, as intended
            warnings.simplefilter("ignore", UserWarning)
            out = ndi.affine_transform(data, np.diag(matrix)[:3], offset=matrix[:3, 3],
                                       output_shape=grid.shape, order=order, mode="constant",
                                       cval=0.0, prefilter=False)
        return out.astype(np.float32, copy=False)
    matrix = np.linalg.inv(affine) @ grid.affine
    out = ndi.affine_transform(data, matrix[:3, :3], offset=matrix[:3, 3],
                               output_shape=grid.shape, order=order, mode="constant",
                               cval=0.0, prefilter=False)
    return out.astype(np.float32, copy=False)


def smooth(volume: np.ndarray) -> np.ndarray:
    """A light blur (1 voxel) so noise does not punch holes in the skin."""
    return ndi.gaussian_filter(volume, 1.0, mode="constant").astype(np.float32, copy=False)


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
