"""A template ready for defacing: head, face mask, brain mask, face features, ears.

A template without a face mask (or without a brain mask) gets one derived from the
pydeface reference: its head is registered to the template (affine for adults and
children, affine + SyN for infants, whose head shape differs), the face mask (and brain
mask) warped, the face mask checked against the template's brain mask (overlap carved
out with a margin; too much overlap, or face features left uncovered, is an error), and
the result cached in ``$BIDSDEID_CACHE`` (default: the user cache dir / bidsdeid), keyed
by the template file's content and the preset, so it is computed once per machine.
``bidsdeid-templates precompute`` fills the cache for every registered template; a
read-only cache (baked into a container image) is still read, and what is missing from
it is written under the temporary dir, which a run keeps inside its work dir.
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
from bidsdeid.deface.volume import Volume, downsample, head_mask, resample_to
from bidsdeid.errors import DataError
from bidsdeid.utils import gz
from bidsdeid.utils.atomic import write_bytes, write_json
from bidsdeid.utils.locks import file_lock

log = logging.getLogger("bidsdeid")

CACHE_VERSION = "1"
CARVE_MARGIN_MM = 2.0
MAX_CARVED_FRACTION = 0.05  # of the derived face mask; more means the derivation failed
MIN_FEATURE_COVERAGE = 0.95


REGION_MM = 2.0
"""Grid of the derived regions (head, face features, ears): they need no finer."""


@dataclass
class TemplateData:
    """A template head and its masks, each a :class:`Volume` on its own grid (the masks
    are resampled onto an image through world coordinates, so grids need not match)."""

    id: str
    contrast: str
    head: Volume
    face: Volume  # float32 0..1, 1 = face
    brain: Volume  # float32 0/1
    features: Volume  # float32 0/1: eyes, nose, mouth
    ears: Volume  # float32 0/1
    face_source: str  # "shipped" | "derived (affine+syn|affine) from pydeface ..."


def configured_cache_dir() -> Path:
    """``$BIDSDEID_CACHE``, else the user cache dir / bidsdeid (may be read-only)."""
    env = os.environ.get("BIDSDEID_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("bidsdeid"))


def _fallback_cache() -> Path:
    """Where to write when the configured cache is read-only: under the temporary dir,
    which a bidsdeid run points into its work dir (``cli.run.confined_writes``)."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"bidsdeid-cache-{os.getuid()}"


def cache_dir() -> Path:
    """The cache folder to write to: the configured one when it can be written, else a
    private folder under the temporary dir, with a warning. A read-only configured cache
    (the masks baked into a container image) is still read first: :func:`cached_file`."""
    wanted = configured_cache_dir()
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        probe = wanted / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return wanted
    except OSError:
        fallback = _fallback_cache()
        fallback.mkdir(mode=0o700, parents=True, exist_ok=True)
        log.warning("template cache %s is not writable: writing to %s (set BIDSDEID_CACHE)",
                    wanted, fallback)
        return fallback


def cached_file(rel: str) -> Path | None:
    """An existing cache file ``rel``, looked up in the configured cache (read-only is
    fine) and then in the fallback; None when neither has it. Creates nothing."""
    for root in (configured_cache_dir(), _fallback_cache()):
        path = root / rel
        if path.is_file():
            return path
    return None


def _digest(*paths: Path | None, extra: str = "") -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{extra}".encode())
    for p in paths:
        if p is not None:
            h.update(p.read_bytes())
    return h.hexdigest()[:20]


def _regions(head: Volume, brain: Volume) -> tuple[Volume, Volume]:
    """Face features and ears on a ~2 mm grid (fast; they need no finer)."""
    low = downsample(head, REGION_MM)
    brain_low = resample_to(brain.data, brain.affine, low.shape, low.affine) >= 0.5
    hm = head_mask(low)
    feats = regions.face_features(low, hm, brain_low)
    ears = regions.ear_region(low, brain_low)
    return (Volume(feats.astype(np.float32), low.affine),
            Volume(ears.astype(np.float32), low.affine))


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
    reg = register.register(target, ref.head, kind="Affine", sloppy=sloppy, rotate=False)
    face = resample_to(ref.face.data, ref.face.affine, target.shape, target.affine,
                       reg.matrix, mode="nearest")
    ref_brain = resample_to(ref.brain.data, ref.brain.affine, target.shape, target.affine,
                            reg.matrix)
    if how == "syn":
        # SyN follows the face's tissue; the affine keeps the mask's extent in the air
        # around it: their union, then the brain carved out below
        face_syn, brain_syn = register.syn_warp(target, ref.head, [ref.face, ref.brain],
                                                reg.matrix, sloppy=sloppy)
        face = np.maximum(face, face_syn)
        ref_brain = brain_syn
        how = "affine+syn"
    if brain is None:
        brain = ref_brain >= 0.5
    near_brain = ndimage.distance_transform_edt(~brain, sampling=target.zooms) <= CARVE_MARGIN_MM
    face_bin = face >= 0.5
    carved = int((face_bin & near_brain).sum())
    if face_bin.sum() == 0 or carved > MAX_CARVED_FRACTION * face_bin.sum():
        raise DataError(f"template {choice.id}: the face mask derived from pydeface overlaps "
                        f"its brain mask ({carved} voxels): derivation failed")
    face = np.where(near_brain, 0.0, face).astype(np.float32)
    feats_vol, _ = _regions(target, Volume(brain.astype(np.float32), target.affine))
    feats = resample_to(feats_vol.data, feats_vol.affine, target.shape, target.affine) >= 0.5
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
    face_name = f"{safe}_{key}_desc-face_mask.nii.gz"
    brain_name = f"{safe}_{key}_desc-brain_mask.nii.gz"
    ready = [cached_file(f"facemasks/{n}") for n in (face_name, brain_name)]
    if ready[0] is not None and ready[1] is not None:  # e.g. baked into an image
        return ready[0], ready[1], "derived from pydeface (cached)"
    folder = cache_dir() / "facemasks"
    face_p, brain_p = folder / face_name, folder / brain_name
    with file_lock(folder / f".{safe}.lock"):
        if face_p.is_file() and brain_p.is_file():
            return face_p, brain_p, "derived from pydeface (cached)"
        target = Volume.load(src)
        brain = None
        if files["brain_mask"] is not None:
            brain = _on_grid(files["brain_mask"], target) >= 0.5
        log.info("deriving a face mask for template %s (once; cached in %s)", choice.id, folder)
        face, brain, how = _derive(choice, target, brain, sloppy)
        for path, arr in ((face_p, (np.clip(face, 0, 1) * 255).round().astype(np.uint8)),
                          (brain_p, brain.astype(np.uint8))):
            img = nib.Nifti1Image(arr, target.affine)
            write_bytes(path, gz.compress(img.to_bytes()))
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
    """Head, face and brain masks, features and ears; the prepared masks are kept in
    ``$BIDSDEID_CACHE/prepared`` (uint8, keyed by the files' content) so later runs
    skip converting pydeface's float64 face mask and computing the regions."""
    head_p = files["head"]
    assert head_p is not None
    head = Volume.load(head_p)
    key = _digest(*[files[k] for k in ("head", "face_mask", "brain_mask")],
                  extra=f"prepared|{choice.id}|{choice.family.face_mask}|{sloppy}")
    found = cached_file(f"prepared/{key}.npz")
    try:
        if found is None:
            raise FileNotFoundError(key)
        with np.load(found) as z:
            vols = {n: Volume(z[n].astype(np.float32) / (255.0 if n == "face" else 1.0),
                              z[f"{n}_affine"]) for n in ("face", "brain", "features", "ears")}
            source = str(z["source"])
    except (OSError, KeyError, ValueError):
        vols, source = _prepare(choice, files, head, sloppy)
        arrays: dict[str, np.ndarray] = {"source": np.array(source)}
        for n, v in vols.items():
            scale = 255.0 if n == "face" else 1.0
            arrays[n] = np.round(v.data * scale).astype(np.uint8)
            arrays[f"{n}_affine"] = v.affine
        prepared = cache_dir() / "prepared" / f"{key}.npz"
        prepared.parent.mkdir(parents=True, exist_ok=True)
        tmp = prepared.with_name(f".{prepared.stem}.{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, prepared)
    return TemplateData(id=choice.id, contrast=choice.contrast, head=head, face=vols["face"],
                        brain=vols["brain"], features=vols["features"], ears=vols["ears"],
                        face_source=source)


def _prepare(choice: TemplateChoice, files: dict[str, Path | None], head: Volume,
             sloppy: bool) -> tuple[dict[str, Volume], str]:
    face_value = choice.family.face_mask.get("face_value", 1)
    if files["face_mask"] is not None and files["brain_mask"] is not None:
        face_vol = Volume.load(files["face_mask"])
        face = Volume(regions.face_from_mask(face_vol.data, face_value), face_vol.affine)
        brain_vol = Volume.load(files["brain_mask"])
        source = "shipped"
    else:
        face_p, brain_p, source = _cached_masks(choice, files, sloppy)
        brain_vol = Volume.load(brain_p)
        if files["face_mask"] is not None:
            face_vol = Volume.load(files["face_mask"])
            face = Volume(regions.face_from_mask(face_vol.data, face_value), face_vol.affine)
            source = "shipped face mask, brain mask " + source
        else:
            face_vol = Volume.load(face_p)
            face = Volume(face_vol.data / 255.0, face_vol.affine)  # cached as uint8 0..255
    brain = Volume((brain_vol.data >= 0.5).astype(np.float32), brain_vol.affine)
    face = Volume(np.clip(face.data, 0, 1).astype(np.float32), face.affine)
    features, ears = _regions(head, brain)
    return {"face": face, "brain": brain, "features": features, "ears": ears}, source


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
