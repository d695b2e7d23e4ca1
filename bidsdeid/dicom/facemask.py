"""The region defacing removed from a series' images, in world space, for its DICOM.

:func:`prepare` runs in the stage (main process): for each defaced image a series
became (:class:`~bidsdeid.deface.result.DefaceResult`: ``removed_mask`` on the image
grid, whose affine maps voxels to RAS world space) it stores the mask as packed bits,
and for refacing the refaced image's stored values at the removed voxels, in one
``.npz`` in the private work dir. Jobs carry only a :class:`FaceSpec` (a path);
each worker loads the file once per series (:func:`load`, cached).

:meth:`SeriesFace.sample` answers, for world points (pixel centres), whether the
series lost them: a point is removed when it falls in a removed voxel of any of the
series' images, or within half a voxel of one (the voxels whose centres are less
than one voxel away along every axis; distances within :data:`ALIGNED` of a whole
voxel count as aligned grids, so a DICOM grid that is the image grid maps each pixel
to exactly one voxel). Points more than one voxel outside every image are reported
as outside (the caller refuses the series).

Refacing: the refaced value of a removed pixel is the refaced image's stored value at
its voxel, used only when it is simple to be right: the series became one 3D image,
and the frame's rescale equals the image's scaling (same stored encoding). Otherwise
the pixel gets zeros, which the caller counts and reports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsdeid.deface.nifti_io import RawNifti
from bidsdeid.deface.result import DefaceResult

ALIGNED = 0.05
"""Voxel fraction under which a pixel centre counts as sitting on a voxel centre."""
MARGIN = 1.0
"""Voxels a pixel centre may lie outside an image's grid (it takes the edge voxel)."""


@dataclass(frozen=True)
class FaceSpec:
    """What a job carries: the prepared file (private work dir) and the method."""

    path: Path
    method: str  # zero | reface
    removed_fraction: float = 0.0  # largest share of voxels one of the images lost


@dataclass
class MaskSource:
    """The removed region of one defaced image."""

    removed: np.ndarray  # bool, image grid
    ras_to_voxel: np.ndarray  # 4x4
    refaced_index: np.ndarray | None = None  # sorted flat (C order) indices of removed
    refaced_stored: np.ndarray | None = None  # the refaced image's stored values there
    slope: float = 1.0
    inter: float = 0.0

    @property
    def fraction(self) -> float:
        return float(self.removed.mean()) if self.removed.size else 0.0


@dataclass
class Sample:
    removed: np.ndarray  # (N,) bool
    inside: np.ndarray  # (N,) bool: within MARGIN of at least one image's grid
    values: np.ndarray | None  # (N,) refaced stored values, NaN where none


class SeriesFace:
    """The removed region of every defaced image of one series."""

    def __init__(self, sources: list[MaskSource], method: str) -> None:
        self.sources = sources
        self.method = method

    @property
    def removed_fraction(self) -> float:
        """The largest share of its voxels any of the series' images lost."""
        return max((s.fraction for s in self.sources), default=0.0)

    @property
    def refaces(self) -> bool:
        return self.method == "reface" and len(self.sources) == 1 and \
            self.sources[0].refaced_index is not None

    def same_scaling(self, slope: float, intercept: float) -> bool:
        """True if a frame with this rescale stores values as the refaced image does."""
        if not self.refaces:
            return False
        src = self.sources[0]
        return bool(np.isclose(slope, src.slope, rtol=1e-5, atol=0)
                    and np.isclose(intercept, src.inter, rtol=1e-5, atol=1e-6))

    def sample(self, ras: np.ndarray) -> Sample:
        n = ras.shape[1]
        removed = np.zeros(n, dtype=bool)
        inside = np.zeros(n, dtype=bool)
        values = None
        for src in self.sources:
            voxel = src.ras_to_voxel[:3, :3] @ ras + src.ras_to_voxel[:3, 3:4]
            shape = np.array(src.removed.shape)[:, None]
            within = np.all((voxel > -0.5 - MARGIN) & (voxel < shape - 0.5 + MARGIN), axis=0)
            inside |= within
            nearest = np.rint(voxel)
            off = voxel - nearest
            other = nearest + np.where(np.abs(off) > ALIGNED, np.sign(off), 0.0)
            hi = shape - 1
            near_i = np.clip(nearest, 0, hi).astype(np.intp)
            other_i = np.clip(other, 0, hi).astype(np.intp)
            hit = np.zeros(n, dtype=bool)
            for pick in itertools.product((0, 1), repeat=3):
                idx = [near_i[a] if p == 0 else other_i[a] for a, p in enumerate(pick)]
                hit |= src.removed[idx[0], idx[1], idx[2]]
            removed |= hit & within
            if self.refaces and src.refaced_index is not None:
                assert src.refaced_stored is not None
                flat = np.ravel_multi_index((near_i[0], near_i[1], near_i[2]),
                                            src.removed.shape)
                pos = np.searchsorted(src.refaced_index, flat)
                pos = np.minimum(pos, max(src.refaced_index.size - 1, 0))
                found = src.refaced_index.size > 0
                match = (src.refaced_index[pos] == flat) if found else np.zeros(n, bool)
                values = np.full(n, np.nan)
                values[match] = src.refaced_stored[pos[match]]
        return Sample(removed, inside, values)


# -- preparing (stage) and loading (worker) ------------------------------------------------
def prepare(results: list[DefaceResult], dest: Path, method: str) -> FaceSpec:
    """Write the removed regions of ``results`` (one series' defaced images) to ``dest``."""
    arrays: dict[str, np.ndarray] = {}
    fraction = 0.0
    reface = method == "reface" and len(results) == 1
    for i, res in enumerate(results):
        assert res.removed_mask is not None
        img = nib.load(str(res.removed_mask))
        removed = np.asanyarray(img.dataobj) > 0  # type: ignore[attr-defined]
        if removed.ndim != 3:
            removed = removed.reshape(removed.shape[:3] + (-1,)).any(axis=3)
        fraction = max(fraction, float(removed.mean()) if removed.size else 0.0)
        arrays[f"mask{i}"] = np.packbits(removed.ravel())
        arrays[f"shape{i}"] = np.array(removed.shape, dtype=np.int64)
        arrays[f"affine{i}"] = np.asarray(img.affine, dtype=np.float64)  # type: ignore[attr-defined]
        if reface and res.defaced is not None:
            nifti = RawNifti.read(res.defaced)
            if len(nifti.shape) == 3 and tuple(nifti.shape) == removed.shape:
                stored = nifti.stored()
                arrays[f"rindex{i}"] = np.flatnonzero(removed).astype(np.int64)
                arrays[f"rvalue{i}"] = stored[removed].astype(np.float64)
                arrays[f"rscale{i}"] = np.array([nifti.slope, nifti.inter])
                del stored
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(dest, "wb") as fh:
        np.savez(fh, n=np.array(len(results)), **arrays)
    return FaceSpec(dest, method, fraction)


def read(spec: FaceSpec) -> SeriesFace:
    with np.load(spec.path) as data:
        sources = []
        for i in range(int(data["n"])):
            shape = tuple(int(s) for s in data[f"shape{i}"])
            bits = np.unpackbits(data[f"mask{i}"], count=int(np.prod(shape)))
            src = MaskSource(bits.astype(bool).reshape(shape),
                             np.linalg.inv(data[f"affine{i}"]))
            if f"rindex{i}" in data:
                src.refaced_index = data[f"rindex{i}"]
                src.refaced_stored = data[f"rvalue{i}"]
                src.slope, src.inter = (float(v) for v in data[f"rscale{i}"])
            sources.append(src)
    return SeriesFace(sources, spec.method)


_CACHE: dict[FaceSpec, SeriesFace] = {}


def load(spec: FaceSpec) -> SeriesFace:
    """The face of ``spec``; a worker keeps only the last one (series come in order)."""
    face = _CACHE.get(spec)
    if face is None:
        _CACHE.clear()
        face = _CACHE[spec] = read(spec)
    return face
