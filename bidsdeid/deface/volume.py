"""A 3D image in RAS world space, and the few operations registration needs on it.

Everything in :mod:`bidsdeid.deface` works on :class:`Volume` (a float32 array and its
RAS voxel-to-world affine, as nibabel gives them) and 4x4 RAS world transforms. Only
:mod:`bidsdeid.deface.register` talks to ANTs (which works in LPS); conversions live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Volume:
    """A 3D array with its voxel -> RAS world affine."""

    data: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def zooms(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @classmethod
    def load(cls, path: str | Path, dtype: type = np.float32) -> Volume:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj, dtype=dtype)
        if data.ndim > 3:
            data = data.reshape(data.shape[:3] + (-1,))[..., 0]
        return cls(np.ascontiguousarray(data), img.affine.astype(float))

    def save(self, path: str | Path, dtype: type | None = None) -> None:
        arr = self.data if dtype is None else self.data.astype(dtype)
        img = nib.Nifti1Image(arr, self.affine)
        img.set_qform(self.affine, code=1)
        img.set_sform(self.affine, code=1)
        nib.save(img, str(path))

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """RAS world coordinates of voxel indices (N x 3)."""
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def downsample(vol: Volume, target_mm: float) -> Volume:
    """Block-average to about ``target_mm`` voxels (integer factors; fast, no aliasing).

    Kept on the volume: the initialiser, the pyramid and the gates ask for the same
    levels of the same image (do not modify ``vol.data`` in place afterwards)."""
    cache: dict[float, Volume] = vol.__dict__.setdefault("_pyramid", {})
    key = float(target_mm)
    if key not in cache:
        cache[key] = _block_mean(vol, key)
    return cache[key]


def _block_mean(vol: Volume, target_mm: float) -> Volume:
    factors = [max(1, round(float(target_mm / z))) for z in vol.zooms]
    d = vol.data
    n = [s // f for s, f in zip(d.shape[:3], factors, strict=True)]
    if min(n) == 0:
        factors = [1, 1, 1]
        n = list(d.shape[:3])
    d = d[: n[0] * factors[0], : n[1] * factors[1], : n[2] * factors[2]]
    d = d.reshape(n[0], factors[0], n[1], factors[1], n[2], factors[2]).mean(axis=(1, 3, 5))
    scale = np.eye(4)
    scale[:3, :3] = np.diag(factors)
    scale[:3, 3] = (np.array(factors) - 1) / 2.0
    return Volume(d.astype(np.float32), vol.affine @ scale)


def otsu(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of ``values`` (1D)."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between))])


def head_mask(vol: Volume, close_mm: float = 6.0) -> np.ndarray:
    """The head (foreground) of an MR image: Otsu on non-zero voxels, largest component,
    closed and filled. Works on any contrast (air is dark in every MR contrast)."""
    d = vol.data
    hi = float(np.percentile(d, 99.5))
    vals = d[(d > 0.02 * hi) & (d < hi)]
    if vals.size < 10:
        return np.zeros(d.shape, bool)
    # Otsu splits air+noise from tissue; halve it so dark tissue (bone, CSF) stays in
    mask = d > 0.5 * otsu(vals)
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    it = max(1, round(close_mm / float(vol.zooms.mean())))
    mask = ndimage.binary_closing(mask, iterations=it, border_value=0)
    return ndimage.binary_fill_holes(mask)


def resample_to(src: np.ndarray, src_affine: np.ndarray, dst_shape: tuple[int, ...],
                dst_affine: np.ndarray, world_dst_to_src: np.ndarray | None = None,
                order: int = 1, cval: float = 0.0, mode: str = "constant") -> np.ndarray:
    """Resample ``src`` onto a destination grid through a 4x4 RAS world transform.

    ``world_dst_to_src`` maps destination world points to source world points (identity
    when None). One affine resampling: no chain of interpolations.
    """
    t = np.eye(4) if world_dst_to_src is None else world_dst_to_src
    vox = np.linalg.inv(src_affine) @ t @ dst_affine
    return ndimage.affine_transform(src, vox[:3, :3], vox[:3, 3], output_shape=dst_shape[:3],
                                    order=order, cval=cval, mode=mode, prefilter=False)


def resample_sparse(src: np.ndarray, src_affine: np.ndarray, dst_shape: tuple[int, ...],
                    dst_affine: np.ndarray, world_dst_to_src: np.ndarray,
                    mode: str = "constant", step: int = 3) -> np.ndarray:
    """:func:`resample_to` (linear) for a mask that fills a small part of the destination:
    find where it is non-zero on a ``step`` times coarser grid, then resample only that
    box at full resolution (a face mask costs a fraction of a whole-volume pass)."""
    shape = np.array(dst_shape[:3])
    coarse_aff = dst_affine @ np.diag([step, step, step, 1.0])
    cshape = tuple(int(x) for x in np.ceil(shape / step))
    coarse = resample_to(src, src_affine, cshape, coarse_aff, world_dst_to_src, mode=mode)
    nz = np.argwhere(coarse > 0)
    out = np.zeros(tuple(int(x) for x in shape), np.float32)
    if len(nz) == 0:
        return out
    lo = np.maximum((nz.min(axis=0) - 1) * step, 0)
    hi = np.minimum((nz.max(axis=0) + 2) * step, shape)
    shift = np.eye(4)
    shift[:3, 3] = lo
    box = resample_to(src, src_affine, tuple(int(x) for x in hi - lo), dst_affine @ shift,
                      world_dst_to_src, mode=mode)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = box
    return out


def rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """A 3x3 rotation from angles in degrees about the RAS x, y and z axes."""
    a, b, c = np.deg2rad([rx, ry, rz])
    x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    z = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return z @ y @ x


def matrix(linear: np.ndarray, translation: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = linear
    m[:3, 3] = translation
    return m
