"""Deface the anatomical images of one session: anchor, template, masks, gates.

The anchor is the T1w; the T2w for infants under 6 months (their T1 contrast is
inverted) or when there is no T1w; else the first image. The age-matched template of the
anchor's contrast is registered to the anchor (affine); every other image is registered
rigidly to the anchor (mutual information), and each gets the template face mask on its
own grid through the composed transform, so every image loses the same face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsdeid.deface import gates, register
from bidsdeid.deface.library import TemplateData
from bidsdeid.deface.nifti_io import RawNifti
from bidsdeid.deface.result import GateResult
from bidsdeid.deface.volume import Volume, resample_sparse, resample_to

INFANT_T2_ANCHOR_MONTHS = 6.0
T1_LIKE = ("T1w", "UNIT1", "MP2RAGE", "inplaneT1", "T1map", "R1map")


@dataclass
class SessionImage:
    """One anatomical image to deface (its staged bytes read once)."""

    rel_path: str
    suffix: str
    nifti: RawNifti
    volume: Volume


@dataclass
class ImageOutcome:
    """What defacing decided for one image (written out by the stage)."""

    image: SessionImage
    role: str  # anchor | coregistered
    removed: np.ndarray
    brain: np.ndarray
    template: np.ndarray
    defaced: np.ndarray  # stored values (dtype of the file), all volumes
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def choose_anchor(images: list[SessionImage], age_months: float | None
                  ) -> tuple[SessionImage, str]:
    """The anchor image and the template contrast that matches it."""
    t1 = [im for im in images if im.suffix == "T1w"]
    t2 = [im for im in images if im.suffix == "T2w"]
    if t2 and (not t1 or (age_months is not None and age_months < INFANT_T2_ANCHOR_MONTHS)):
        return t2[0], "T2w"
    if t1:
        return t1[0], "T1w"
    first = images[0]
    return first, "T1w" if first.suffix in T1_LIKE else "T2w"


def grid_masks(tpl: TemplateData, vol: Volume, world_to_template: np.ndarray,
               remove_ears: bool) -> gates.GridMasks:
    """Template face (+ ears), brain, features and head resampled onto ``vol``'s grid."""
    shape, aff, t = vol.shape, vol.affine, world_to_template

    def on_grid(src: Volume, mode: str = "constant", sparse: bool = False) -> np.ndarray:
        if sparse:
            return resample_sparse(src.data, src.affine, shape, aff, t, mode=mode)
        return resample_to(src.data, src.affine, shape, aff, t, mode=mode)

    # the face mask extends past the template's field of view (nearest edge), so an image
    # that shows more chin or neck than the template still loses it
    removed = on_grid(tpl.face, "nearest", sparse=True) >= 0.5
    if remove_ears:
        removed |= on_grid(tpl.ears, sparse=True) >= 0.5
    brain = on_grid(tpl.brain) >= 0.5
    feats = on_grid(tpl.features, sparse=True) >= 0.5
    head = on_grid(tpl.head)
    det = abs(float(np.linalg.det(t[:3, :3])))
    expected = float(tpl.features.data.sum()) * tpl.features.voxel_ml / max(det, 1e-6) \
        / vol.voxel_ml
    return gates.GridMasks(removed, brain, feats, head.astype(np.float32), expected)


def apply_mask(im: SessionImage, masks: gates.GridMasks, method: str) -> np.ndarray:
    """The stored voxels with the removed region zeroed (or refaced), every volume."""
    stored = im.nifti.stored()
    removed = masks.removed
    if stored.ndim > 3:
        flat = stored.reshape(stored.shape[:3] + (-1,))
    else:
        flat = stored[..., None]
    if method == "reface":
        phys_template = masks.template
        for v in range(flat.shape[3]):
            vol = flat[..., v].astype(np.float32) * im.nifti.slope + im.nifti.inter
            keep = masks.brain & (vol > 0)
            t_ref = float(np.median(phys_template[keep])) if keep.any() else 0.0
            scale = float(np.median(vol[keep])) / t_ref if t_ref > 0 else 0.0
            flat[..., v][removed] = im.nifti.to_stored(phys_template[removed] * scale)
    else:
        zero = im.nifti.to_stored(np.zeros(1))[0]
        flat[removed, :] = zero
    return flat.reshape(stored.shape)


def deface_session(images: list[SessionImage], tpl: TemplateData, anchor: SessionImage, *,
                   sloppy: bool = False, remove_ears: bool = False, method: str = "zero",
                   anchor_init: np.ndarray | None = None) -> list[ImageOutcome]:
    """Register, mask and gate every image of a session (anchor first)."""
    reg = register.register(anchor.volume, tpl.head, kind="Affine", sloppy=sloppy,
                            init=anchor_init)
    outcomes = [_outcome(anchor, "anchor", tpl, reg.matrix, reg.similarity,
                         gates.MIN_SIMILARITY_TEMPLATE, "template -> anchor",
                         remove_ears, method, reg.matrix)]
    anchor_ok = outcomes[0].passed
    for im in images:
        if im is anchor:
            continue
        rigid = register.register(anchor.volume, im.volume, kind="Rigid", sloppy=sloppy,
                                  extra_candidates=[np.eye(4)])
        # image world -> anchor world -> template world
        to_template = reg.matrix @ np.linalg.inv(rigid.matrix)
        out = _outcome(im, "coregistered", tpl, to_template, rigid.similarity,
                       gates.MIN_SIMILARITY_COREG, "anchor -> image (rigid)", remove_ears,
                       method, rigid.matrix)
        if not anchor_ok:
            out.gates.append(GateResult("anchor", False, None, "the anchor passed its gates",
                                        f"the anchor {anchor.rel_path} failed a gate"))
        outcomes.append(out)
    return outcomes


def _outcome(im: SessionImage, role: str, tpl: TemplateData, to_template: np.ndarray,
             similarity: float, threshold: float, label: str, remove_ears: bool,
             method: str, geometry: np.ndarray) -> ImageOutcome:
    masks = grid_masks(tpl, im.volume, to_template, remove_ears)
    metrics, gate_list = gates.evaluate(im.volume, masks, similarity, threshold, label,
                                        geometry)
    return ImageOutcome(im, role, masks.removed, masks.brain, masks.template,
                        apply_mask(im, masks, method), metrics, gate_list)


def load_image(rel_path: str, suffix: str, path: Path) -> SessionImage:
    nifti = RawNifti.read(path)
    return SessionImage(rel_path, suffix, nifti, nifti.volume())


__all__ = [
    "ImageOutcome",
    "SessionImage",
    "choose_anchor",
    "deface_session",
    "load_image",
    "resample_to",
]
