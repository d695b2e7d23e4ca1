"""Support for the QC tests: real heads, and a geometric stand-in for defacing.

Until the defacing stage lands, the QC tests deface real heads with a plane: the
removed region is everything anterior and inferior of a plane through a point behind
the eyes, found from the head itself in RAS space (the NIfTI affine tells where
anterior and superior are). It is a plausible defacing, not a registration: the QC
code under test never sees how the masks were made. Also here: a rough brain mask
(an ellipsoid inside the skull), the same defacing shifted off the face (which the
face check must flag), and the T1w of the shared DICOM sessions converted with the
dcm2niix binary.

This module holds no tests itself; the ``test_qc_`` prefix only marks its owner.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsdeid.config import RunConfig
from bidsdeid.context import BidsImage, ParticipantContext
from bidsdeid.deface.result import DefaceResult
from bidsdeid.participant import make_context
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import NULL_PROGRESS
from bidsdeid.qc import volume

# Real heads of ../shared/data/nifti.
NIFTI_HEADS = {
    "ds000031_T1w": "nifti/ds000031/ds000031_sub-01_ses-006_run-001_T1w.nii.gz",
    "niivue_T1w": "nifti/niivue_register/T1_head_ext2.nii.gz",
    "niivue_T2w": "nifti/niivue_register/T2w.nii.gz",  # a slab: brow to upper lip only
}
# T1w series of the shared DICOM sessions (folder, file glob of the T1w series).
DICOM_T1W = {
    "philips_T1w": ("dicom/philips_elition_r571", "1301_*"),
    "xa30_T1w": ("dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl", "*"),
}


ADULT_HEADS = ("ds000031_T1w", "niivue_T1w", "philips_T1w", "xa30_T1w")
"""Heads whose whole face is in the field of view."""

SHIFTS_OFF_FACE = {"inferior 60 mm": (0.0, 0.0, -60.0), "anterior 80 mm": (0.0, 80.0, 0.0)}
"""The simulated defacing moved off the face: 60 mm down it takes the mouth, chin and
the tip of the nose but leaves the eyes and brow; 80 mm forward it misses the face."""


@pytest.fixture(scope="session")
def real_heads(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every real head: the NIfTI heads as they are (read only) and the DICOM T1w series
    converted by dcm2niix into a temporary folder."""
    heads = {name: shared_data / rel for name, rel in NIFTI_HEADS.items()}
    tmp = tmp_path_factory.mktemp("dicom_t1w")
    for name in DICOM_T1W:
        heads[name] = convert_dicom_t1w(shared_data, name, tmp)
    return heads


def dcm2niix_binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def convert_dicom_t1w(shared: Path, name: str, dest: Path) -> Path:
    """Convert one shared T1w series with the dcm2niix binary (copies inputs first)."""
    folder, pattern = DICOM_T1W[name]
    src_dir = dest / f"{name}_dicom"
    src_dir.mkdir(parents=True)
    for f in sorted((shared / folder).glob(pattern)):
        if f.is_file():
            (src_dir / f.name).write_bytes(f.read_bytes())
    out_dir = dest / f"{name}_nifti"
    out_dir.mkdir()
    proc = subprocess.run([dcm2niix_binary(), "-z", "y", "-b", "n", "-f", name, "-o",
                           str(out_dir), str(src_dir)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = out_dir / f"{name}.nii.gz"
    assert out.is_file(), sorted(p.name for p in out_dir.iterdir())
    return out


@dataclass
class Landmarks:
    """Rough head landmarks in world mm, from the head mask alone."""

    x_mid: float
    nose_y: float  # most anterior point of the face (the nose tip)
    nose_z: float
    top_z: float  # vertex


def _world_axes(shape: tuple[int, ...], affine: np.ndarray) -> list[np.ndarray]:
    """World x, y, z of every voxel, as broadcastable float32 arrays."""
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape[:3])
    grids = np.ix_(i, j, k)
    return [sum(np.float32(affine[r, c]) * grids[c] for c in range(3))
            + np.float32(affine[r, 3]) for r in range(3)]


def landmarks(data: np.ndarray, affine: np.ndarray) -> Landmarks:
    sm = volume.smooth(data)
    head = volume.head_mask(sm, volume.head_threshold(sm))
    x, y, z = _world_axes(data.shape, affine)
    xs, ys, zs = (np.broadcast_to(a, data.shape)[head] for a in (x, y, z))
    top = float(zs.max())
    x_mid = float(np.median(xs))
    # The nose tip: the most anterior head voxel near the midline, below the brow.
    near = (np.abs(xs - x_mid) < 25) & (zs < top - 60)
    tip = int(np.argmax(np.where(near, ys, -np.inf)))
    return Landmarks(x_mid, float(ys[tip]), float(zs[tip]), top)


def face_plane_mask(data: np.ndarray, affine: np.ndarray, marks: Landmarks,
                    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """1 where the simulated defacing removes the head: anterior-inferior of a plane at
    45 degrees through a point 35 mm behind and 40 mm above the nose tip, and no further
    back than 80 mm behind it. ``shift_mm`` moves the whole region (x, y, z)."""
    _, y, z = _world_axes(data.shape, affine)
    py = marks.nose_y - 35 + shift_mm[1]
    pz = marks.nose_z + 40 + shift_mm[2]
    side = (y - py) - (z - pz)  # normal (0, 1, -1): anterior and inferior
    removed = (side > 0) & (y > marks.nose_y - 80 + shift_mm[1])
    removed = np.broadcast_to(removed, data.shape)
    return removed.astype(np.uint8)


def brain_ellipsoid(data: np.ndarray, affine: np.ndarray, marks: Landmarks) -> np.ndarray:
    """A rough brain: an ellipsoid (radii 60, 75, 50 mm) whose front is 45 mm behind the
    nose tip and whose top is 15 mm under the vertex."""
    x, y, z = _world_axes(data.shape, affine)
    cy = marks.nose_y - 45 - 75
    cz = marks.top_z - 15 - 50
    inside = ((x - marks.x_mid) / 60) ** 2 + ((y - cy) / 75) ** 2 + ((z - cz) / 50) ** 2 <= 1
    return np.broadcast_to(inside, data.shape).astype(np.uint8)


def save_like(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


def simulate_defacing(original: Path, work: Path, *, rel_path: str, suffix: str = "T1w",
                      shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                      with_template: bool = False) -> DefaceResult:
    """Deface ``original`` with the plane mask (optionally shifted) and describe it as the
    deface stage would. Files go under ``work`` (private, uncompressed for speed), named
    after ``rel_path``; ``with_template`` adds a stand-in for the template on the image
    grid (the head blurred) so the registration overlay has something to draw."""
    work.mkdir(parents=True, exist_ok=True)
    img = nib.load(str(original))
    data = np.asanyarray(img.dataobj)
    while data.ndim > 3:
        data = data[..., 0]
    affine = np.asarray(img.affine, float)
    marks = landmarks(np.asarray(data, np.float32), affine)
    removed = face_plane_mask(data, affine, marks, shift_mm)
    brain = brain_ellipsoid(data, affine, marks)
    stem = Path(rel_path).name.replace(".nii.gz", "")
    defaced = np.where(removed > 0, 0, data).astype(data.dtype)
    orig_copy = save_like(data, affine, work / f"{stem}_orig.nii")
    out = save_like(defaced, affine, work / f"{stem}_defaced.nii")
    removed_p = save_like(removed, affine, work / f"{stem}_removed.nii")
    brain_p = save_like(brain, affine, work / f"{stem}_brain.nii")
    template_p = None
    if with_template:  # a stand-in "template on the image grid": the smoothed head itself
        from scipy import ndimage as ndi

        blurred = ndi.gaussian_filter(np.asarray(data, np.float32), 3.0)
        template_p = save_like(blurred.astype(np.float32), affine,
                               work / f"{stem}_template.nii")
    n_removed = int(removed.sum())
    n_brain = int((removed.astype(bool) & brain.astype(bool)).sum())
    return DefaceResult(
        rel_path=rel_path, suffix=suffix, role="anchor", original=orig_copy, defaced=out,
        removed_mask=removed_p, brain_mask=brain_p, template_warped=template_p,
        mask_derivative=None, template="plane-sim", template_contrast="T1w", anchor=None,
        age_months=None, age_source="none (adult assumed)",
        metrics={"voxels_removed": float(n_removed), "brain_voxels_removed": float(n_brain),
                 "similarity": 0.5},
        gates=[])


def make_ctx(root: Path, input_label: str = "01", output_label: str | None = None,
             modalities: list[str] | None = None) -> ParticipantContext:
    """A participant context with private, work and output dirs under ``root``."""
    cfg = RunConfig(bids_dir=root / "bids", output_dir=root / "out",
                    analysis_level="participant", private_dir=root / "private",
                    work_dir=root / "work")
    cfg.deface.modalities = modalities
    (root / "bids").mkdir(parents=True, exist_ok=True)
    ctx = make_context(cfg, ProjectKey(b"q" * 32), input_label, NULL_PROGRESS)
    ctx.output_label = output_label or input_label
    return ctx


def add_image(ctx: ParticipantContext, suffix: str, head: Path, *,
              deface: bool = True, shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
              ) -> str:
    """Stage ``head`` as ``sub-<output>/anat/sub-<output>_<suffix>.nii.gz`` and, with
    ``deface``, deface it (simulated) and append the result as the deface stage would."""
    rel = f"{ctx.sub}/anat/{ctx.sub}_{suffix}.nii.gz"
    original = ctx.work / "originals" / f"{suffix}.nii.gz"
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_bytes(Path(head).read_bytes())
    ctx.images.append(BidsImage(rel, "anat", suffix, {"sub": ctx.output_label}, None,
                                f"bids anat/{suffix}", original=original))
    staged = ctx.stage_path(rel)
    staged.parent.mkdir(parents=True, exist_ok=True)
    if deface:
        res = simulate_defacing(original, ctx.work / "deface", rel_path=rel, suffix=suffix,
                                shift_mm=shift_mm, with_template=True)
        nib.save(nib.load(str(res.defaced)), str(staged))  # the staged, published copy
        res.defaced = staged
        ctx.results.setdefault("deface", []).append(res)
    else:
        staged.write_bytes(original.read_bytes())
    return rel
