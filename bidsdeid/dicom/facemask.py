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
from typing import Any

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

    def __post_init__(self) -> None:
        # bounding box of the removed voxels (None: nothing removed), to skip frames fast
        self.box: tuple[np.ndarray, np.ndarray] | None = None
        if self.removed.any():
            lo, hi = [], []
            for axis in range(3):
                others = tuple(a for a in range(3) if a != axis)
                hits = np.flatnonzero(self.removed.any(axis=others))
                lo.append(hits[0])
                hi.append(hits[-1])
            self.box = (np.array(lo, float), np.array(hi, float))

    @property
    def fraction(self) -> float:
        return float(self.removed.mean()) if self.removed.size else 0.0

    def lookup(self, idx: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        return self.removed[idx]

    def refaced(self, idx: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Refaced stored values at voxels ``idx`` (NaN where the voxel was kept)."""
        assert self.refaced_index is not None and self.refaced_stored is not None
        flat = np.ravel_multi_index(idx, self.removed.shape).reshape(-1)
        values = np.full(flat.size, np.nan)
        if self.refaced_index.size:
            pos = np.minimum(np.searchsorted(self.refaced_index, flat),
                             self.refaced_index.size - 1)
            match = self.refaced_index[pos] == flat
            values[match] = self.refaced_stored[pos[match]]
        return values


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
        """Whether each RAS point (3, N) was removed (see the module docstring)."""
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
                hit |= src.lookup((idx[0], idx[1], idx[2]))
            removed |= hit & within
            if self.refaces:
                values = src.refaced((near_i[0], near_i[1], near_i[2]))
        return Sample(removed, inside, values)

    def sample_block(self, origin: np.ndarray, per_row: np.ndarray, per_column: np.ndarray,
                     rows: int, columns: int) -> Sample:
        """:meth:`sample` for the pixel centres ``origin + r * per_row + c * per_column``
        (RAS; r < rows, c < columns, row-major), with two shortcuts that give the same
        answer: a block whose corners all lie inside an image and whose bounding box
        misses that image's removed voxels loses nothing to it; a block whose pixel
        centres all sit on voxel centres (within ALIGNED, the usual case: the image is
        the series' own grid) reads the mask by slicing."""
        n = rows * columns
        general = []
        removed = np.zeros(n, dtype=bool)
        values = None
        any_inside = False  # every pixel lies inside one of the images
        for src in self.sources:
            m, t = src.ras_to_voxel[:3, :3], src.ras_to_voxel[:3, 3]
            o, dr, dc = m @ origin + t, m @ per_row, m @ per_column
            corners = o[:, None] + dr[:, None] * [0, 0, rows - 1, rows - 1] + \
                dc[:, None] * [0, columns - 1, 0, columns - 1]
            shape = np.array(src.removed.shape, float)[:, None]
            if not np.all((corners > -0.5 - MARGIN) & (corners < shape - 0.5 + MARGIN)):
                general.append(src)  # partly outside: per pixel
                continue
            any_inside = True
            # indices are clipped to the grid, so compare the clipped extent with the box
            top = np.clip(corners.max(axis=1), 0, shape[:, 0] - 1)
            bottom = np.clip(corners.min(axis=1), 0, shape[:, 0] - 1)
            if src.box is None or np.any(top < src.box[0] - 1) or \
                    np.any(bottom > src.box[1] + 1):
                continue
            ro, rr, rc = np.rint(o), np.rint(dr), np.rint(dc)
            error = np.abs(o - ro) + np.abs(dr - rr) * (rows - 1) + np.abs(dc - rc) * (columns - 1)
            if np.any(error > ALIGNED):
                general.append(src)
                continue
            r = np.arange(rows)[:, None]
            c = np.arange(columns)[None, :]
            idx = tuple(np.broadcast_to(np.clip(ro[a] + rr[a] * r + rc[a] * c, 0,
                                                src.removed.shape[a] - 1).astype(np.intp),
                                        (rows, columns)) for a in range(3))
            removed |= src.lookup(idx).reshape(-1)  # type: ignore[arg-type]
            if self.refaces:
                values = src.refaced(idx)  # type: ignore[arg-type]
        inside = np.full(n, any_inside)
        if general:
            rr_ = np.arange(rows, dtype=np.float64)[None, :, None]
            cc_ = np.arange(columns, dtype=np.float64)[None, None, :]
            pts = (origin[:, None, None] + per_row[:, None, None] * rr_
                   + per_column[:, None, None] * cc_).reshape(3, -1)
            rest = SeriesFace(general, self.method).sample(pts)
            removed |= rest.removed
            inside |= rest.inside
            if rest.values is not None:
                values = rest.values
        return Sample(removed, inside, values)


# -- preparing (stage) and loading (worker) ------------------------------------------------
def prepare(results: list[DefaceResult], dest: Path, method: str) -> FaceSpec:
    """Write the removed regions of ``results`` (one series' defaced images) to ``dest``."""
    arrays: dict[str, Any] = {}  # name -> array (np.savez keywords)
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
    arrays["n"] = np.array(len(results))
    with open(dest, "wb") as fh:
        np.savez(fh, **arrays)
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
