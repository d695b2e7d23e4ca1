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

import pytest
from test_qc_support import (  # noqa: F401 - real_heads is a fixture
    ADULT_HEADS,
    SHIFTS_OFF_FACE,
    real_heads,
    simulate_defacing,
)

from bidsdeid.qc import face
from bidsdeid.qc.assess import FACE_GATE, ImageInput, ImageQC, assess

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]

FACE_VIEWS = ("front/frontal", "left45/profile", "right45/profile")


def _check(head: Path, tmp: Path, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
           ) -> ImageQC:
    res = simulate_defacing(head, tmp, rel_path="sub-01/anat/sub-01_T1w.nii.gz",
                            shift_mm=shift)
    return assess(ImageInput(res.rel_path, "T1w", res, res.original, res.defaced))


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


def test_a_slab_without_the_whole_face_is_inconclusive(real_heads: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """niivue's T2w covers brow to nose only: no detector sees a face there, so the
    check must not claim a pass; it asks a human (inconclusive)."""
    qc = _check(real_heads["niivue_T2w"], tmp_path)
    assert qc.face is not None and qc.face.before is not None
    assert not qc.face.before.face
    assert qc.face.status == "inconclusive" and qc.status == "inconclusive"
    assert all(g.passed for g in qc.gates)


def test_judge_rules() -> None:
    """The verdict table, on evidence built by hand."""
    seen = face.FaceEvidence({"front/frontal": 150.0}, 20.0)
    clean = face.FaceEvidence({"front/frontal": 2.0}, 3.0)
    weak = face.FaceEvidence({"front/frontal": float(face.HAAR_WEAK)}, 3.0)
    nose_only = face.FaceEvidence({"front/frontal": 0.0}, face.NOSE_FACE_MM + 1)
    assert face.judge(seen, clean).status == "pass"
    assert face.judge(seen, seen).status == "fail"
    assert face.judge(seen, nose_only).status == "fail"
    assert face.judge(seen, weak).status == "review"
    assert face.judge(clean, clean).status == "inconclusive"
    assert face.judge(None, clean).status == "inconclusive"
    assert face.judge(clean, seen).status == "fail"
    assert face.judge(seen, None).status == "not defaced"
