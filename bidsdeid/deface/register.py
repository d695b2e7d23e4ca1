"""Registration with antspyx: a robust initialiser, then a coarse-to-fine affine or rigid.

The result of every registration is a 4x4 RAS world transform mapping points of the
*fixed* image to the *moving* image (ANTs' forward-transform convention), so masks are
resampled from template space onto any image grid in one interpolation.

* Initialiser (:func:`initial_guess`): the header gives the rough orientation (every
  axis order, flips and obliques are handled because we work in world space); the heads
  are centred on the centroid of their upper part (a long neck or shoulders in the field
  of view do not pull it down), then a grid of rotations (+-30 degrees about each axis,
  then +-7.5 around the best) and shifts is scored by normalised mutual information at
  ~6 mm. Cheap (~1 s) and independent of where the head sits in the field of view.
* ANTs affine (or rigid) at 4 mm then 2 mm, Mattes MI, fixed seed
  (:mod:`bidsdeid.deface.backend`). Full resolution is never needed for a face mask.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from bidsdeid.deface import backend
from bidsdeid.deface.volume import LPS, Volume, downsample, head_mask, matrix, rotation

MAX_LEVEL_VOXELS = 1_700_000
SIMILARITY_MM = 4.0
"""Grid on which the similarity of a registration is measured (same for every preset)."""


@lru_cache(maxsize=2)
def preset(sloppy: bool) -> dict[str, Any]:
    data = json.loads(resources.files("bidsdeid.deface").joinpath("presets.json")
                      .read_text(encoding="utf-8"))
    return dict(data["sloppy" if sloppy else "default"])


@dataclass
class Registration:
    """Fixed world -> moving world (RAS, 4x4) and how well the images then agree."""

    matrix: np.ndarray
    similarity: float


# -- ANTs <-> RAS ------------------------------------------------------------------------
def to_ants(vol: Volume) -> Any:
    ants = backend.ants()
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    return ants.from_numpy(np.ascontiguousarray(vol.data, dtype=np.float32),
                           origin=[float(x) for x in lps[:3, 3]],
                           spacing=[float(x) for x in spacing], direction=direction)


def _write_ras(m: np.ndarray, path: Path) -> str:
    ants = backend.ants()
    lin = LPS @ m[:3, :3] @ LPS
    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                    matrix=lin, translation=LPS @ m[:3, 3],
                                    center=(0.0, 0.0, 0.0))
    ants.write_transform(tx, str(path))
    return str(path)


def _read_ras(path: str) -> np.ndarray:
    ants = backend.ants()
    tx = ants.read_transform(path)
    p = np.asarray(tx.parameters, float)
    c = np.asarray(tx.fixed_parameters, float)
    lin, t = p[:9].reshape(3, 3), p[9:12]
    return matrix(LPS @ lin @ LPS, LPS @ (c + t - lin @ c))


# -- similarity ---------------------------------------------------------------------------
def _quantize(x: np.ndarray, bins: int) -> np.ndarray:
    hi = float(np.percentile(x, 99.5)) if x.size else 1.0
    lo = float(np.percentile(x, 0.5)) if x.size else 0.0
    q = np.floor((x - lo) / max(hi - lo, 1e-6) * bins)
    return np.clip(q, 0, bins - 1).astype(np.int64)


def nmi(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Normalised mutual information (H(A) + H(B)) / H(A, B): 1 (independent) to 2."""
    if a.size < 50:
        return 1.0
    qa, qb = _quantize(a, bins), _quantize(b, bins)
    joint = np.bincount(qa * bins + qb, minlength=bins * bins).astype(float)
    joint /= joint.sum()
    pa, pb = joint.reshape(bins, bins).sum(1), joint.reshape(bins, bins).sum(0)

    def h(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    hj = h(joint)
    return (h(pa) + h(pb)) / hj if hj > 0 else 1.0


class _Sampler:
    """Sample a moving volume at world points of a fixed grid (the initialiser's scorer)."""

    def __init__(self, fixed: Volume, moving: Volume, fixed_mask: np.ndarray) -> None:
        idx = np.argwhere(fixed_mask)
        self.values = fixed.data[fixed_mask]
        self.points = fixed.world(idx.astype(float))
        self.moving = moving
        self.inv = np.linalg.inv(moving.affine)

    def score(self, m: np.ndarray) -> float:
        pts = self.points @ m[:3, :3].T + m[:3, 3]
        vox = pts @ self.inv[:3, :3].T + self.inv[:3, 3]
        vals = ndimage.map_coordinates(self.moving.data, vox.T, order=1, cval=0.0,
                                       prefilter=False)
        return nmi(self.values, vals, bins=24)


def _upper_centroid(vol: Volume, mask: np.ndarray, depth_mm: float = 120.0) -> np.ndarray:
    """Centroid of the top ``depth_mm`` of the head (along world S): robust to necks."""
    pts = vol.world(np.argwhere(mask).astype(float))
    if len(pts) == 0:
        return vol.world(np.array([[s / 2 for s in vol.shape]], float))[0]
    top = float(np.percentile(pts[:, 2], 99.5))
    keep = pts[:, 2] >= top - depth_mm
    return pts[keep].mean(axis=0)


def initial_guess(fixed: Volume, moving: Volume, p: dict[str, Any],
                  fixed_head: np.ndarray | None = None,
                  moving_head: np.ndarray | None = None,
                  extra: list[np.ndarray] | None = None) -> np.ndarray:
    """Fixed world -> moving world: centroids matched, then a scored rotation/shift grid.

    ``extra`` transforms (e.g. identity, for two images of one session that the scanner
    already aligned) compete with the grid's best on the same score."""
    f = downsample(fixed, p["init_mm"])
    m = downsample(moving, p["init_mm"] * 0.75)
    fmask = head_mask(f) if fixed_head is None else fixed_head
    mmask = head_mask(m) if moving_head is None else moving_head
    cf, cm = _upper_centroid(f, fmask), _upper_centroid(m, mmask)
    sample = ndimage.binary_dilation(fmask, iterations=2)
    scorer = _Sampler(f, m, sample)

    def candidate(angles: tuple[float, float, float], shift: np.ndarray) -> np.ndarray:
        r = rotation(*angles)
        return matrix(r, cm + shift - r @ cf)

    zero = np.zeros(3)
    best = (-1.0, (0.0, 0.0, 0.0), zero)
    coarse = p["init_coarse_deg"]
    side = coarse[::2]  # roll and yaw vary less than pitch between heads: half the grid
    for ax in coarse:
        for ay in side:
            for az in side:
                s = scorer.score(candidate((ax, ay, az), zero))
                if s > best[0]:
                    best = (s, (ax, ay, az), zero)
    for _ in range(2):  # fine rotations, then shifts, around the best so far
        _, a0, t0 = best
        for dx in p["init_fine_deg"]:
            for dy in p["init_fine_deg"]:
                for dz in p["init_fine_deg"]:
                    a = (a0[0] + dx, a0[1] + dy, a0[2] + dz)
                    s = scorer.score(candidate(a, t0))
                    if s > best[0]:
                        best = (s, a, t0)
        _, a0, t0 = best
        for sx in p["init_shift_mm"]:
            for sy in p["init_shift_mm"]:
                for sz in p["init_shift_mm"]:
                    t = t0 + np.array([sx, sy, sz], float) / 2.0
                    s = scorer.score(candidate(a0, t))
                    if s > best[0]:
                        best = (s, a0, t)
    result = candidate(best[1], best[2])
    for m_extra in extra or []:
        if scorer.score(m_extra) >= best[0]:
            result, best = m_extra, (scorer.score(m_extra), best[1], best[2])
    return result


def similarity(fixed: Volume, moving: Volume, m: np.ndarray) -> float:
    """NMI of the fixed image and the registered moving one, over the fixed head
    (dilated) on a 4 mm grid: the registration-quality gate reads this."""
    f = downsample(fixed, SIMILARITY_MM)
    mask = ndimage.binary_dilation(head_mask(f), iterations=1)
    return _Sampler(f, moving, mask).score(m)


def _level(vol: Volume, mm: float) -> Volume:
    """``vol`` at about ``mm``; coarser when that would still be a big grid (a 1.6 mm
    image is not worth 2 M samples per iteration at the 2 mm level)."""
    out = downsample(vol, mm)
    if out.data.size > MAX_LEVEL_VOXELS:
        out = downsample(vol, mm * 1.6)
    return out


def register(fixed: Volume, moving: Volume, *, kind: str = "Affine", sloppy: bool = False,
             init: np.ndarray | None = None, run_initialiser: bool = True,
             moving_pyramid: dict[float, Volume] | None = None,
             extra_candidates: list[np.ndarray] | None = None,
             rotate: bool = True) -> Registration:
    """Register ``moving`` to ``fixed`` (kind ``Affine`` or ``Rigid``); see module doc.

    ``init`` (fixed world -> moving world) replaces the initialiser when given, and
    ``run_initialiser=False`` starts from identity (tests force bad starts this way).
    ``rotate=False`` keeps the initialiser to centring and shifts: for two templates,
    both in a standard orientation, a rotation search only adds ways to go wrong.
    """
    ants = backend.ants()
    p = preset(sloppy)
    if not rotate:
        p = {**p, "init_coarse_deg": [0], "init_fine_deg": [0]}
    if init is None:
        init = (initial_guess(fixed, moving, p, extra=extra_candidates) if run_initialiser
                else np.eye(4))
    levels = p["affine_levels_mm"] if kind == "Affine" else p["rigid_levels_mm"]
    iters = p["affine_iterations"] if kind == "Affine" else p["rigid_iterations"]
    rates = p["affine_sampling"] if kind == "Affine" else p["rigid_sampling"]
    current = init
    with tempfile.TemporaryDirectory(prefix="bidsdeid-reg-") as tmp:
        for i, (mm, n, rate) in enumerate(zip(levels, iters, rates, strict=True)):
            f = to_ants(_level(fixed, mm))
            mv = (moving_pyramid or {}).get(mm) or _level(moving, mm)
            start = _write_ras(current, Path(tmp) / f"init{i}.mat")
            out = ants.registration(f, to_ants(mv), type_of_transform=kind,
                                    initial_transform=[start], outprefix=f"{tmp}/l{i}_",
                                    aff_metric="mattes", aff_sampling=32,
                                    aff_random_sampling_rate=rate, aff_iterations=(int(n),),
                                    aff_shrink_factors=(1,), aff_smoothing_sigmas=(0,))
            current = _read_ras(out["fwdtransforms"][0])
    return Registration(current, similarity(fixed, moving, current))


def syn_warp(fixed: Volume, moving: Volume, images: list[Volume], init: np.ndarray,
             sloppy: bool = False) -> list[np.ndarray]:
    """Deformable (SyN) registration of ``moving`` to ``fixed`` starting from the affine
    ``init``; returns ``images`` (in moving space) warped onto the fixed grid (linear).

    Used once per template to derive a face mask (infant heads differ in shape)."""
    ants = backend.ants()
    p = preset(sloppy)
    levels = p["syn_levels_mm"]
    finest = min(levels)
    f = to_ants(downsample(fixed, finest))
    mv = to_ants(downsample(moving, finest))
    with tempfile.TemporaryDirectory(prefix="bidsdeid-syn-") as tmp:
        start = _write_ras(init, Path(tmp) / "init.mat")
        out = ants.registration(f, mv, type_of_transform="SyNOnly", initial_transform=[start],
                                outprefix=f"{tmp}/syn_", syn_metric="mattes",
                                syn_sampling=32, reg_iterations=tuple(p["syn_iterations"]),
                                flow_sigma=3, total_sigma=0)
        fixed_full = to_ants(fixed)
        warped = []
        for vol in images:
            w = ants.apply_transforms(fixed_full, to_ants(vol), out["fwdtransforms"],
                                      interpolator="linear")
            warped.append(w.numpy().astype(np.float32))
    return warped
