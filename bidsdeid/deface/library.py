"""A template ready for defacing: head, face mask, brain mask, face features, ears.

A template without a face mask (or without a brain mask) gets one derived from the
pydeface reference: its head is registered to the template (affine for adults and
children, affine + SyN for infants, whose head shape differs), the face mask (and brain
mask) warped, the face mask checked against the template's brain mask (overlap carved
out with a margin; too much overlap, or face features left uncovered, is an error), and
the result cached in ``$BIDSDEID_CACHE`` (default: the user cache dir / bidsdeid), keyed
by the template file's content and the preset, so it is computed once per machine.
``bidsdeid-templates precompute`` fills the cache for every registered template.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bidsdeid.deface import regions
from bidsdeid.deface.registry import Family, TemplateChoice, load_registry
from bidsdeid.deface.templates import required_files, resolve_file
from bidsdeid.deface.volume import Volume, head_mask, resample_to
from bidsdeid.errors import DataError
from bidsdeid.utils.atomic import gzip_bytes, write_bytes, write_json
from bidsdeid.utils.locks import file_lock

log = logging.getLogger("bidsdeid")

CACHE_VERSION = "1"
CARVE_MARGIN_MM = 2.0
MAX_CARVED_FRACTION = 0.05  # of the derived face mask; more means the derivation failed
MIN_FEATURE_COVERAGE = 0.95


@dataclass
class TemplateData:
    """Everything on the grid of the template head of the chosen contrast."""

    id: str
    contrast: str
    head: Volume
    face: np.ndarray  # float32, 1 = face
    brain: np.ndarray  # bool
    head_mask: np.ndarray  # bool
    features: np.ndarray  # bool: eyes, nose, mouth
    ears: np.ndarray  # bool
    face_source: str  # "shipped" | "derived (affine|syn) from pydeface, cached"


def cache_dir() -> Path:
    env = os.environ.get("BIDSDEID_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("bidsdeid"))


def _digest(*paths: Path | None, extra: str = "") -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{extra}".encode())
    for p in paths:
        if p is not None:
            h.update(p.read_bytes())
    return h.hexdigest()[:20]


def _on_grid(src: Path, target: Volume) -> np.ndarray:
    """A mask file resampled (world identity) onto ``target``'s grid, as float."""
    vol = Volume.load(src)
    if vol.shape == target.shape and np.allclose(vol.affine, target.affine, atol=1e-3):
        return vol.data
    return resample_to(vol.data, vol.affine, target.shape, target.affine, order=1)


@lru_cache(maxsize=1)
def reference() -> TemplateData:
    """The pydeface template with its shipped face mask and brain mask."""
    fam = next(f for f in load_registry() if f.id == "pydeface")
    return load(TemplateChoice(fam, None, "T1w", "reference"), sloppy=False)


def _derive(choice: TemplateChoice, target: Volume, brain: np.ndarray | None,
            sloppy: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Warp the pydeface face (and brain) mask onto ``target``; returns face, brain."""
    from bidsdeid.deface import register

    ref = reference()
    how = str(choice.family.face_mask.get("derive", "affine"))
    reg = register.register(target, ref.head, kind="Affine", sloppy=sloppy)
    if how == "syn":
        face, ref_brain = register.syn_warp(
            target, ref.head, [Volume(ref.face, ref.head.affine),
                               Volume(ref.brain.astype(np.float32), ref.head.affine)],
            reg.matrix, sloppy=sloppy)
    else:
        face = resample_to(ref.face, ref.head.affine, target.shape, target.affine, reg.matrix)
        ref_brain = resample_to(ref.brain.astype(np.float32), ref.head.affine, target.shape,
                                target.affine, reg.matrix)
    if brain is None:
        brain = ref_brain >= 0.5
    near_brain = ndimage.distance_transform_edt(~brain, sampling=target.zooms) <= CARVE_MARGIN_MM
    face_bin = face >= 0.5
    carved = int((face_bin & near_brain).sum())
    if face_bin.sum() == 0 or carved > MAX_CARVED_FRACTION * face_bin.sum():
        raise DataError(f"template {choice.id}: the face mask derived from pydeface overlaps "
                        f"its brain mask ({carved} voxels): derivation failed")
    face = np.where(near_brain, 0.0, face).astype(np.float32)
    feats = regions.face_features(target, head_mask(target), brain)
    covered = float((face[feats] >= 0.5).mean()) if feats.any() else 0.0
    if covered < MIN_FEATURE_COVERAGE:
        raise DataError(f"template {choice.id}: the derived face mask covers {covered:.0%} of "
                        f"the template's eyes, nose and mouth: derivation failed")
    return face, brain, f"derived ({how}) from pydeface; carved {carved} voxels near the brain"


def _cached_masks(choice: TemplateChoice, files: dict[str, Path | None],
                  sloppy: bool) -> tuple[Path, Path, str]:
    """Derived face (and brain) masks of ``choice``, from the cache or computed now."""
    src = files["derive_head"]
    assert src is not None
    key = _digest(src, files["brain_mask"], extra=f"{choice.family.face_mask}|{sloppy}")
    safe = choice.id.replace(":", "_").replace("/", "_")
    folder = cache_dir() / "facemasks"
    face_p = folder / f"{safe}_{key}_desc-face_mask.nii.gz"
    brain_p = folder / f"{safe}_{key}_desc-brain_mask.nii.gz"
    with file_lock(folder / f".{safe}.lock"):
        if face_p.is_file() and brain_p.is_file():
            return face_p, brain_p, "derived from pydeface (cached)"
        target = Volume.load(src)
        brain = None
        if files["brain_mask"] is not None:
            brain = _on_grid(files["brain_mask"], target) >= 0.5
        log.info("deriving a face mask for template %s (once; cached in %s)", choice.id, folder)
        face, brain, how = _derive(choice, target, brain, sloppy)
        for path, arr in ((face_p, (face * 255).round().astype(np.uint8)),
                          (brain_p, brain.astype(np.uint8))):
            img = nib.Nifti1Image(arr, target.affine)
            write_bytes(path, gzip_bytes(img.to_bytes()))
        write_json(folder / f"{safe}_{key}.json", {"template": choice.id, "method": how,
                                                   "sloppy": sloppy})
        return face_p, brain_p, how


_LOADED: dict[tuple[object, ...], TemplateData] = {}


def load(choice: TemplateChoice, sloppy: bool = False) -> TemplateData:
    """Load (deriving and caching missing masks) the template of ``choice``.

    Kept in memory for the process (a participant's sessions share templates)."""
    files = required_files(choice)
    key = (choice.id, choice.contrast, sloppy, tuple(sorted((k, str(v)) for k, v in
                                                             files.items())))
    if key not in _LOADED:
        if len(_LOADED) >= 6:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = _load_files(choice, files, sloppy)
    return _LOADED[key]


def _load_files(choice: TemplateChoice, files: dict[str, Path | None],
                sloppy: bool) -> TemplateData:
    family, contrast = choice.family, choice.contrast
    head_p = files["head"]
    assert head_p is not None
    head = Volume.load(head_p)
    face_value = family.face_mask.get("face_value", 1)
    if files["face_mask"] is not None and files["brain_mask"] is not None:
        face = regions.face_from_mask(_on_grid(files["face_mask"], head), face_value)
        brain = _on_grid(files["brain_mask"], head) >= 0.5
        source = "shipped"
    else:
        face_p, brain_p, source = _cached_masks(choice, files, sloppy)
        brain = _on_grid(brain_p, head) >= 0.5
        if files["face_mask"] is not None:
            face = regions.face_from_mask(_on_grid(files["face_mask"], head), face_value)
            source = "shipped face mask, brain mask " + source
        else:
            face = _on_grid(face_p, head) / (255.0 if _is_uint8(face_p) else 1.0)
    hm = head_mask(head)
    return TemplateData(id=choice.id, contrast=contrast, head=head,
                        face=np.clip(face, 0, 1).astype(np.float32), brain=brain,
                        head_mask=hm, features=regions.face_features(head, hm, brain),
                        ears=regions.ear_region(head, brain), face_source=source)


def _is_uint8(path: Path) -> bool:
    return nib.load(str(path)).get_data_dtype() == np.uint8


def precompute(families: list[Family], sloppy: bool = False) -> list[tuple[str, str]]:
    """Derive (or find cached) the masks of every template available here."""
    from bidsdeid.deface.templates import TemplateMissingError

    done = []
    for fam in families:
        for cohort in fam.cohorts:
            contrast = fam.contrasts[0]
            try:
                resolve_file(fam, cohort, contrast)
                data = load(TemplateChoice(fam, cohort, contrast, "precompute"), sloppy)
                done.append((data.id, data.face_source))
            except TemplateMissingError as exc:
                done.append((fam.id + (f":cohort-{cohort}" if cohort else ""),
                             f"missing: {exc}"))
    return done
