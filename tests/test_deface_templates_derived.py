"""Derived regions checked against references: ears vs the AFNI refacer shells, a user
template with no masks (face and brain masks derived by affine from pydeface), 4D
anatomicals, and the precompute command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from deface_helpers import deface, write_moved

from bidsdeid.deface import library, register
from bidsdeid.deface.heads import INFANT, NIFTI_HEADS
from bidsdeid.deface.volume import Volume, downsample, resample_to

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]
SHELLS = "templates/niivue_deface"


def test_ear_region_matches_afni_refacer_shell(shared_data) -> None:
    """Our ears (from pydeface's head and brain masks), carried to MNI space, cover most
    of the lateral part of AFNI's face+ears+neck shell, and never come near the brain."""
    ref = library.reference()
    ssw = Volume.load(shared_data / SHELLS / "MNI152_2009_SSW.nii.gz")
    reg = register.register(ssw, ref.head, sloppy=True, rotate=False)
    shell = downsample(Volume.load(shared_data / SHELLS / "refacer_shell_sym212.nii.gz"), 2.0)
    ijk = np.indices(shell.shape).reshape(3, -1).T.astype(float)
    x, y, z = shell.world(ijk).T.reshape(3, *shell.shape)
    afni_ears = (shell.data > 0) & (np.abs(x) > 60) & (y < 10) & (z > -70)
    ours = resample_to(ref.ears.data, ref.ears.affine, shell.shape, shell.affine,
                       reg.matrix) >= 0.5
    assert afni_ears.sum() * shell.voxel_ml > 50
    assert ours[afni_ears].mean() >= 0.45
    assert not (ours & (np.abs(x) < 45)).any()  # nothing medial: ears only
    brain = resample_to(ref.brain.data, ref.brain.affine, ref.ears.shape, ref.ears.affine)
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(brain < 0.5, sampling=ref.ears.zooms)
    assert dist[ref.ears.data >= 0.5].min() >= 4.0


def test_user_template_without_masks_gets_derived_ones(shared_data, template_env,
                                                       tmp_path) -> None:
    """--template HEAD only (an infant head, given as a plain file): face and brain masks
    derived by affine registration of pydeface, cached, and defacing an infant T1w with
    it passes every gate."""
    head = shared_data / INFANT["infant_T1w"]
    user_head = tmp_path / "my_infant_template.nii.gz"
    user_head.write_bytes(head.read_bytes())
    src = tmp_path / "subject_T1w.nii.gz"
    write_moved(head, src, seed=3)
    (out,), tpl = deface({"T1w": src}, template=[str(user_head)])
    assert tpl.id == "user:my_infant_template" and "derived" in tpl.face_source
    assert all(g.passed for g in out.gates), out.gates
    assert list((Path(template_env.parent) / "bidsdeid-cache" / "facemasks").glob(
        "user_my_infant_template_*_desc-face_mask.nii.gz"))
    (_again,), tpl2 = deface({"T1w": src}, template=[str(user_head)])
    assert "cached" in tpl2.face_source or tpl2 is tpl


def test_4d_anatomical_loses_the_face_on_every_volume(shared_data, template_env,
                                                      tmp_path) -> None:
    t1 = shared_data / NIFTI_HEADS["niivue_T1w"]
    img = nib.load(t1)
    data = np.asanyarray(img.dataobj)
    multi = tmp_path / "MESE.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([data, data // 2, data // 3], axis=-1), img.affine),
             multi)
    outs, _ = deface({"T1w": t1, "MESE": multi})
    four = next(o for o in outs if o.image.suffix == "MESE")
    assert four.role == "coregistered" and four.defaced.shape == data.shape + (3,)
    for v in range(3):
        assert (four.defaced[..., v][four.removed] == 0).all()
        kept = four.image.nifti.stored()[..., v][~four.removed]
        assert np.array_equal(four.defaced[..., v][~four.removed], kept)
    assert four.removed.sum() > 0 and all(g.passed for g in four.gates)


def test_precompute_command_caches_every_available_template(template_env) -> None:
    exe = Path(sys.executable).parent / "bidsdeid-templates"
    proc = subprocess.run([str(exe), "precompute", "--sloppy"], capture_output=True,
                          text=True, check=True)
    lines = {ln.split()[0]: ln for ln in proc.stdout.splitlines() if ln.strip()}
    assert "shipped" in lines["pydeface"]
    assert "derived" in lines["MNIInfant:cohort-1"]
    assert "missing" in lines["MNIInfant:cohort-2"]
