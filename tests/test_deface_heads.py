"""Defacing real heads: ground truth by construction, co-registration, broken registrations,
the infant path, the DICOM T1w of two scanners.

Sloppy presets throughout (accuracy at the default preset is what benchmarks/deface.py
measures); every assertion is about which voxels are removed and which are kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from deface_helpers import deface, dice, eroded, reorder, write_moved

from bidsdeid.deface import gates, register, session
from bidsdeid.deface.heads import INFANT, NIFTI_HEADS, convert_t1w
from bidsdeid.deface.volume import Volume, head_mask, matrix, resample_to, rotation

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


def _assert_safe(out: session.ImageOutcome) -> None:
    failed = [(g.name, g.message) for g in out.gates if not g.passed]
    assert not failed, failed
    assert out.metrics["brain_voxels_removed"] == 0
    assert out.metrics["brain_distance_mm"] > 0
    assert out.metrics["voxels_removed"] > 0


def test_infant_head_in_any_pose_loses_exactly_its_face(shared_data, template_env,
                                                        tmp_path) -> None:
    """The 0-2 month T2w template as a subject, reordered, flipped, rotated <= 30 degrees
    and moved <= 30 mm: the removed region is the template's (derived) face moved the
    same way, and no brain voxel is removed."""
    src = shared_data / INFANT["infant_T2w"]
    moved = tmp_path / "infant_T2w.nii.gz"
    perm, flips = write_moved(src, moved, seed=7)
    (out,), tpl = deface({"T2w": moved}, age_months=1.0)
    assert tpl.id == "MNIInfant:cohort-1" and tpl.contrast == "T2w"
    assert tpl.face_source.startswith("derived")
    head = tpl.head
    on_head = [resample_to(m.data, m.affine, head.shape, head.affine) >= 0.5
               for m in (tpl.face, tpl.brain)]
    truth_face, truth_brain = (reorder(m, perm, flips) for m in on_head)
    _assert_safe(out)
    assert dice(out.removed, truth_face) >= 0.9
    zooms = out.image.volume.zooms
    assert not (out.removed & eroded(truth_brain, zooms, 1.0)).any()
    # and the defaced voxels are zero exactly there
    defaced = out.defaced
    assert (defaced[out.removed] == 0).all()
    original = out.image.nifti.stored()
    assert np.array_equal(defaced[~out.removed], original[~out.removed])


def test_adult_head_in_any_pose_loses_the_same_face(shared_data, template_env,
                                                    tmp_path) -> None:
    """ds000031 as acquired, and reordered/flipped/rotated/moved: the same voxels go."""
    src = shared_data / NIFTI_HEADS["ds000031_T1w"]
    (ref,), tpl = deface({"T1w": src})
    assert tpl.id == "pydeface"
    _assert_safe(ref)
    moved = tmp_path / "moved_T1w.nii.gz"
    perm, flips = write_moved(src, moved, seed=11)
    (out,), _ = deface({"T1w": moved})
    _assert_safe(out)
    assert dice(out.removed, reorder(ref.removed, perm, flips)) >= 0.9
    truth_brain = reorder(ref.brain, perm, flips)
    assert not (out.removed & eroded(truth_brain, out.image.volume.zooms, 1.0)).any()
    # the removed region holds a face's worth of head tissue, not just air
    vol = ref.image.volume
    assert (ref.removed & head_mask(vol)).sum() * vol.voxel_ml > 150


def test_t2w_loses_the_same_face_as_its_t1w(shared_data, template_env) -> None:
    """niivue pair (not aligned): the T2w's removed region matches the T1w's carried
    over by an independent ANTs rigid registration (full defaults, no initialiser)."""
    from bidsdeid.deface import backend

    t1, t2 = shared_data / NIFTI_HEADS["niivue_T1w"], shared_data / NIFTI_HEADS["niivue_T2w"]
    outs, _ = deface({"T1w": t1, "T2w": t2})
    anchor, other = outs
    assert (anchor.role, other.role) == ("anchor", "coregistered")
    _assert_safe(anchor)
    _assert_safe(other)
    ants = backend.ants()
    fixed = register.to_ants(anchor.image.volume)
    moving = register.to_ants(other.image.volume)
    ref = ants.registration(fixed, moving, type_of_transform="Rigid",
                            aff_random_sampling_rate=0.2)
    t1_removed = register.to_ants(Volume(anchor.removed.astype(np.float32),
                                         anchor.image.volume.affine))
    carried = ants.apply_transforms(moving, t1_removed, ref["fwdtransforms"],
                                    whichtoinvert=[True], interpolator="linear").numpy() >= 0.5
    ones = register.to_ants(Volume(np.ones(anchor.image.volume.shape, np.float32),
                                   anchor.image.volume.affine))
    in_t1_view = ants.apply_transforms(moving, ones, ref["fwdtransforms"], whichtoinvert=[True],
                                       interpolator="nearestNeighbor").numpy() >= 0.5
    assert dice(other.removed[in_t1_view], carried[in_t1_view]) >= 0.9
    assert other.metrics["similarity"] >= gates.MIN_SIMILARITY_COREG


@pytest.mark.parametrize(("head", "age", "angles"), [
    ("niivue_T1w", None, (90, 0, 0)),
    ("infant_T2w", 1.0, (0, 0, 90)),  # NMI alone would pass this one (1.08)
])
def test_90_degree_wrong_start_is_caught(shared_data, template_env, head, age,
                                         angles) -> None:
    src = shared_data / (NIFTI_HEADS.get(head) or INFANT[head])
    contrast = head.split("_")[1]
    (good,), tpl = deface({contrast: src}, age_months=age)
    assert good.passed
    start = register.register(Volume.load(src), tpl.head, sloppy=True).matrix
    wrong = start @ matrix(rotation(*angles), np.zeros(3))
    (out,), _ = deface({contrast: src}, age_months=age, anchor_init=wrong)
    registration = next(g for g in out.gates if g.name == "registration")
    assert not registration.passed and not out.passed
    assert "registration failed" in registration.message


def test_template_of_the_wrong_age_is_caught(shared_data, template_env) -> None:
    """An adult head defaced with the 0-2 month infant template fails a gate."""
    src = shared_data / NIFTI_HEADS["ds000031_T1w"]
    (out,), tpl = deface({"T1w": src}, age_months=1.0)
    assert tpl.id == "MNIInfant:cohort-1"
    assert not out.passed


def test_infant_path_picks_infant_template_and_t2w_anchor(shared_data, template_env) -> None:
    """A 2-month-old with T1w and T2w: MNIInfant, the T2w anchors, the T1w follows."""
    t1, t2 = shared_data / INFANT["infant_T1w"], shared_data / INFANT["infant_T2w"]
    outs, tpl = deface({"T1w": t1, "T2w": t2}, age_months=2.0)
    assert tpl.id == "MNIInfant:cohort-1" and tpl.contrast == "T2w"
    roles = {o.image.suffix: o.role for o in outs}
    assert roles == {"T2w": "anchor", "T1w": "coregistered"}
    for out in outs:
        _assert_safe(out)
    # the two templates share a grid: both lose the same face
    assert dice(outs[0].removed, outs[1].removed) >= 0.9


@pytest.mark.parametrize("name", ["philips_T1w", "xa30_T1w"])
def test_dicom_t1w_of_two_scanners(shared_data, template_env, tmp_path, name) -> None:
    path = convert_t1w(shared_data, name, tmp_path)
    (out,), tpl = deface({"T1w": path})
    assert tpl.id == "pydeface"
    _assert_safe(out)
    assert out.metrics["face_feature_coverage"] >= gates.MIN_FEATURE_COVERAGE
    assert 50 < out.metrics["removed_ml"]


def test_ears_and_reface(shared_data, template_env) -> None:
    src = shared_data / NIFTI_HEADS["niivue_T1w"]
    (plain,), _ = deface({"T1w": src})
    (ears,), _ = deface({"T1w": src}, remove_ears=True, method="reface")
    _assert_safe(ears)
    extra = ears.removed & ~plain.removed
    assert extra.sum() * ears.image.volume.voxel_ml > 5  # both ears, several ml
    assert (plain.removed & ~ears.removed).sum() == 0
    # refaced: template intensities, not zeros, inside; untouched outside
    stored = ears.image.nifti.stored()
    assert np.array_equal(ears.defaced[~ears.removed], stored[~ears.removed])
    inside = ears.defaced[ears.removed & (ears.template > 0.2 * ears.template.max())]
    assert inside.mean() > 0 and np.corrcoef(
        inside, ears.template[ears.removed & (ears.template > 0.2 * ears.template.max())]
    )[0, 1] > 0.99
