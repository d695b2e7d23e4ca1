"""Helpers of the deface tests: moved heads with known truth, Dice, one-call defacing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bidsdeid.deface import library, registry, session
from bidsdeid.deface.volume import matrix, rotation


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return 2.0 * float((a & b).sum()) / s if s else 1.0


def random_pose(seed: int) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], np.ndarray]:
    """A voxel axis order, flips, and a rigid world transform (<= 30 deg, <= 30 mm)."""
    rng = np.random.default_rng(seed)
    perm = tuple(int(i) for i in rng.permutation(3))
    if perm == (0, 1, 2):
        perm = (2, 0, 1)
    flips = tuple(bool(f) for f in rng.integers(0, 2, 3))
    angles = rng.uniform(-30, 30, 3)
    shift = rng.uniform(-30, 30, 3)
    return perm, flips, matrix(rotation(*angles), shift)  # type: ignore[return-value]


def reorder(arr: np.ndarray, perm: tuple[int, ...], flips: tuple[bool, ...]) -> np.ndarray:
    out = np.transpose(arr, perm + tuple(range(3, arr.ndim)))
    for ax, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=ax)
    return np.ascontiguousarray(out)


def moved_affine(affine: np.ndarray, shape: tuple[int, ...], perm: tuple[int, ...],
                 flips: tuple[bool, ...], world: np.ndarray) -> np.ndarray:
    """Affine of :func:`reorder`-ed voxels, the head then moved by ``world``."""
    new_shape = [shape[p] for p in perm]
    p = np.zeros((4, 4))
    p[3, 3] = 1
    for i, ax in enumerate(perm):  # old index[ax] = new index[i] (or flipped)
        if flips[i]:
            p[ax, i] = -1
            p[ax, 3] = new_shape[i] - 1
        else:
            p[ax, i] = 1
    return world @ affine @ p


def write_moved(src: Path, dst: Path, seed: int) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """A copy of ``src`` with voxel axes reordered and flipped and the head moved."""
    img = nib.load(str(src))
    perm, flips, world = random_pose(seed)
    data = reorder(np.asanyarray(img.dataobj), perm, flips)
    aff = moved_affine(img.affine, img.shape, perm, flips, world)
    out = nib.Nifti1Image(data, aff)
    out.set_qform(aff, code=1)
    out.set_sform(aff, code=1)
    nib.save(out, str(dst))
    return perm, flips


def deface(paths: dict[str, Path], age_months: float | None = None, *, sloppy: bool = True,
           remove_ears: bool = False, method: str = "zero",
           anchor_init: np.ndarray | None = None,
           template: list[str] | None = None) -> tuple[list[session.ImageOutcome],
                                                        library.TemplateData]:
    """Deface the images ``{suffix: path}`` of one session (the stage minus file I/O)."""
    images = [session.load_image(f"{s}.nii.gz", s.split("_")[0], p) for s, p in paths.items()]
    anchor, contrast = session.choose_anchor(images, age_months)
    choice = registry.select(registry.load_registry(), age_months, contrast, template)
    tpl = library.load(choice, sloppy=sloppy)
    return session.deface_session(images, tpl, anchor, sloppy=sloppy, remove_ears=remove_ears,
                                  method=method, anchor_init=anchor_init), tpl


def eroded(mask: np.ndarray, zooms: np.ndarray, mm: float) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=zooms) > mm
