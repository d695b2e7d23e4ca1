"""The face check on real heads: a face before defacing, none after, and a defacing
moved off the face is caught.

Views that must show a face on every adult head before defacing: the front view
(OpenCV frontal cascade), the left 45 degree view (profile cascade) and the right 45
degree view (profile cascade on the mirrored render); and the nose must stand out of
the front depth map. The two pure profiles are rendered for the reviewer but are not
used by the detector (the profile cascade is trained on three-quarter views).
"""

# ruff: noqa: F811 - fixtures imported from test_qc_support are parameters here
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydeface
import pytest
from test_qc_support import (  # noqa: F401 - real_heads is a fixture
    ADULT_HEADS,
    SHIFTS_OFF_FACE,
    real_heads,
    simulate_defacing,
)

from bidsdeid.deface.result import DefaceResult
from bidsdeid.qc import face, volume
from bidsdeid.qc.assess import FACE_GATE, ImageInput, ImageQC, assess

FACE_VIEWS = ("front/frontal", "left45/profile", "right45/profile")


def _check(head: Path, tmp: Path, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
           ) -> ImageQC:
    res = simulate_defacing(head, tmp, rel_path="sub-01/anat/sub-01_T1w.nii.gz",
                            shift_mm=shift)
    return assess(ImageInput(res.rel_path, "T1w", res, res.original, res.defaced))


@pytest.mark.needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("name", ADULT_HEADS)
def test_face_found_before_and_none_after_defacing(name: str, real_heads: dict[str, Path],
                                                   tmp_path: Path) -> None:
    qc = _check(real_heads[name], tmp_path)
    assert qc.face is not None and qc.face.before is not None and qc.face.after is not None
    before, after = qc.face.before, qc.face.after
    for view in FACE_VIEWS:
        assert before.haar[view] >= face.HAAR_FACE, (view, before.summary())
    assert before.nose_mm >= face.NOSE_FACE_MM, before.summary()
    assert not after.face and not after.weak, after.summary()
    assert qc.face.status == "pass" and qc.status == "pass"
    gate = [g for g in qc.gates if g.name == FACE_GATE]
    assert len(gate) == 1 and gate[0].passed
    # the simulated defacing itself is plausible: it removed something and no brain
    assert qc.metrics["voxels_removed"] > 0
    assert qc.metrics["brain_voxels_removed"] == 0
    assert qc.metrics["voxels_changed_outside_mask"] == 0


@pytest.mark.needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("shift", sorted(SHIFTS_OFF_FACE))
@pytest.mark.parametrize("name", ADULT_HEADS)
def test_defacing_shifted_off_the_face_fails(name: str, shift: str,
                                             real_heads: dict[str, Path],
                                             tmp_path: Path) -> None:
    qc = _check(real_heads[name], tmp_path, SHIFTS_OFF_FACE[shift])
    assert qc.face is not None and qc.face.after is not None
    assert qc.face.after.face, qc.face.after.summary()
    assert qc.face.status == "fail" and qc.status == "fail"
    gate = [g for g in qc.gates if g.name == FACE_GATE]
    assert len(gate) == 1 and not gate[0].passed
    assert "face visible after defacing" in gate[0].message


@pytest.mark.needs_shared
@pytest.mark.slow
def test_a_slab_without_the_whole_face_is_inconclusive(real_heads: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """niivue's T2w covers brow to nose only: no detector sees a face there, so the
    check must not claim a pass; it asks a human (inconclusive)."""
    qc = _check(real_heads["niivue_T2w"], tmp_path)
    assert qc.face is not None and qc.face.before is not None
    assert not qc.face.before.seen
    assert qc.face.status == "inconclusive" and qc.status == "inconclusive"
    assert all(g.passed for g in qc.gates)


def test_judge_rules() -> None:
    """The verdict table, on evidence built by hand."""
    seen = face.FaceEvidence({"front/frontal": 150.0}, 20.0)
    clean = face.FaceEvidence({"front/frontal": 2.0}, 3.0)
    weak = face.FaceEvidence({"left45/profile": float(face.HAAR_WEAK)}, 3.0)
    nose_only = face.FaceEvidence({"front/frontal": 0.0}, face.NOSE_FACE_MM + 1)
    profile = face.FaceEvidence({"right45/profile": float(face.HAAR_FACE)}, 3.0)
    # the frontal pattern alone (brows and orbits above a cut) decides nothing ...
    brows = face.FaceEvidence({"front/frontal": 150.0}, 4.0)
    # ... but with a second sign it is a face
    brows_and_bump = face.FaceEvidence({"front/frontal": 150.0}, face.NOSE_WEAK_MM)
    assert face.judge(seen, clean).status == "pass"
    assert face.judge(seen, brows).status == "pass"
    assert face.judge(seen, brows_and_bump).status == "fail"
    assert face.judge(seen, seen).status == "fail"
    assert face.judge(seen, nose_only).status == "fail"
    assert face.judge(seen, profile).status == "fail"
    assert face.judge(seen, weak).status == "review"
    assert face.judge(clean, clean).status == "inconclusive"
    assert face.judge(None, clean).status == "inconclusive"
    assert face.judge(clean, seen).status == "fail"
    assert face.judge(seen, None).status == "not defaced"
    # the frontal pattern backed by a profile count: a second sign when the profile
    # keeps PROFILE_KEPT of the head's own count before, else only a look is asked for
    # (the shared XA30 T1w's cut surface: frontal 41, profile 23 of 171, nose gone)
    before = face.FaceEvidence({"front/frontal": 267.0, "right45/profile": 171.0}, 21.8)
    cut = face.FaceEvidence({"front/frontal": 41.0, "right45/profile": 23.0}, 5.8)
    missed = face.FaceEvidence({"front/frontal": 116.0, "right45/profile": 73.0}, 5.8)
    assert face.judge(before, cut).status == "review"
    assert face.judge(before, missed).status == "fail"
    assert cut.face  # with nothing to compare with, the absolute rule holds
    low = face.FaceEvidence({"front/frontal": 169.0, "right45/profile": 17.0}, 17.7)
    faint = face.FaceEvidence({"front/frontal": 41.0, "right45/profile": 10.0}, 5.8)
    assert face.judge(low, faint).status == "fail"  # never below HAAR_WEAK


def pydeface_head_and_face_mask() -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """pydeface's own template head and face mask (one grid, no registration needed):
    a real defacing mask on a real-shaped head. The mask is 0 over the face."""
    data = Path(pydeface.__file__).parent / "data"
    head = volume.load_image(data / "mean_reg2mean.nii.gz")
    mask, _ = volume.load_image(data / "facemask.nii.gz")
    return head, mask < 0.5


def shifted(removed: np.ndarray, affine: np.ndarray, shift_mm: tuple[float, float, float]
            ) -> np.ndarray:
    """``removed`` moved by ``shift_mm`` (world axes of an axis-aligned RAS image)."""
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    out = removed
    for axis, (mm, zoom) in enumerate(zip(shift_mm, zooms)):
        n = round(float(mm / zoom))
        if n:
            out = np.roll(out, n, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = slice(0, n) if n > 0 else slice(n, None)
            out[tuple(edge)] = False
    return out


@pytest.mark.slow
def pydeface_defaced(tmp: Path, shift: tuple[float, float, float]) -> ImageInput:
    """pydeface's head defaced with its own face mask moved by ``shift`` (mm), as the QC
    input of a defacing (original, defaced and removed region written to ``tmp``)."""
    (data, affine), removed = pydeface_head_and_face_mask()
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    removed = shifted(removed, affine, shift)
    paths = {}
    for name, arr in (("orig", data), ("defaced", np.where(removed, 0, data)),
                      ("removed", removed.astype(np.uint8))):
        paths[name] = tmp / f"{name}.nii"
        nib.save(nib.Nifti1Image(arr, affine), str(paths[name]))
    res = DefaceResult("sub-01/anat/sub-01_T1w.nii.gz", "T1w", "anchor", paths["orig"],
                       paths["defaced"], paths["removed"], None, None, template="pydeface")
    return ImageInput(res.rel_path, "T1w", res, res.original, res.defaced)


@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (0.0, 0.0, -40.0), (0.0, 40.0, 0.0),
                                   (50.0, 0.0, 0.0)])
def test_pydeface_face_mask_on_its_template(shift: tuple[float, float, float],
                                            tmp_path: Path) -> None:
    """In place, pydeface's mask passes the check (or asks for a look: the template has a
    bar-shaped artefact at the brow); moved 40 mm down, 40 mm forward or 50 mm sideways
    it leaves eyes or nose, and the check fails the image."""
    qc = assess(pydeface_defaced(tmp_path, shift))
    assert qc.face is not None and qc.face.before is not None and qc.face.before.seen
    if shift == (0.0, 0.0, 0.0):
        assert qc.face.status in ("pass", "review"), qc.face.message
    else:
        assert qc.face.status == "fail", qc.face.message


def test_threads_change_nothing(tmp_path: Path) -> None:
    """QC with the face detectors in a second thread (``threads`` > 1) gives the same
    verdict, evidence, metrics and figures, byte for byte, as QC in one thread: here on
    pydeface's head defaced 40 mm too low, so both states have detections to box."""
    item = pydeface_defaced(tmp_path, (0.0, 0.0, -40.0))
    one, two = assess(item, threads=1), assess(item, threads=2)
    assert one.face is not None and two.face is not None
    assert one.face.status == two.face.status == "fail"
    assert one.face.before == two.face.before and one.face.after == two.face.after
    assert one.face.after is not None and one.face.after.detections
    assert one.metrics == two.metrics and one.status == two.status
    assert [(f.name, f.png) for f in one.figures] == [(f.name, f.png) for f in two.figures]
