"""End to end with real defacing: DICOM and BIDS inputs of real heads through the CLI.

One study, four participants: the Philips session (DICOM, adult T1w), ds000031 (BIDS
T1w with full face and neck), the niivue pair (BIDS T1w and T2w of one person, not
aligned: the T2w is co-registered and loses the same face) and the Siemens XA30 T1w
(enhanced DICOM, 2 mm). What is pinned here is
what only the whole pipeline shows: every published anatomical image is defaced
exactly where its published mask says, no brain voxel is removed, the QC face check
sees a face before and none after on each adult head, and the dataset validates.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from conftest import make_dicom_study, run_cli, tree_digest

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow, pytest.mark.xdist_group("deface_e2e")]

ANAT = {
    "sub-01/anat/sub-01_T1w.nii.gz": None,  # from DICOM: no input NIfTI to compare with
    "sub-02/anat/sub-02_T1w.nii.gz": "nifti/ds000031/ds000031_sub-01_ses-006_run-001_T1w",
    "sub-03/anat/sub-03_T1w.nii.gz": "nifti/niivue_register/T1_head_ext2",
    "sub-03/anat/sub-03_T2w.nii.gz": "nifti/niivue_register/T2w",
    "sub-04/anat/sub-04_acq-tfl_T1w.nii.gz": None,  # the XA30 T1w (enhanced, 2 mm)
}
XA30_T1W = "dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl"


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("deface_e2e")
    study = make_dicom_study(shared_data, root / "study", {"01": "philips", "04": XA30_T1W})
    for rel, src in ANAT.items():
        if src is None:
            continue
        dest = study / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / (src + ".nii.gz"), dest)
        side = shared_data / (src + ".json")
        if side.exists():
            shutil.copyfile(side, dest.with_name(dest.name.replace(".nii.gz", ".json")))
    (study / "dataset_description.json").write_text(
        json.dumps({"Name": "e2e", "BIDSVersion": "1.10.0"}))
    before = tree_digest(study)
    out, private = root / "out", root / "private"
    part = run_cli(study, out, "participant", "--private-dir", private, "--nprocs", "2",
                   check=0)
    group = run_cli(study, out, "group", "--private-dir", private, check=0)
    return SimpleNamespace(study=study, out=out, private=private, before=before,
                           participant=part, group=group)


def _qc(run: SimpleNamespace, sub: str) -> dict:
    return json.loads((run.out / "derivatives" / "bidsdeid" / f"{sub}_qc.json").read_text())


def _mask_for(run: SimpleNamespace, rel: str) -> Path:
    sub = rel.split("/")[0]
    suffix = rel.rsplit("_", 1)[1].split(".")[0]
    stem = Path(rel).name.replace(f"_{suffix}.nii.gz", "")
    return (run.out / "derivatives" / "bidsdeid" / sub / "anat"
            / f"{stem}_space-{suffix}_desc-deface_mask.nii.gz")


@pytest.mark.parametrize("rel", sorted(ANAT))
def test_published_image_is_defaced_exactly_where_its_mask_says(
        run: SimpleNamespace, shared_data: Path, rel: str) -> None:
    img = nib.load(run.out / rel)
    mask_path = _mask_for(run, rel)
    assert mask_path.is_file(), mask_path
    mask = np.asanyarray(nib.load(mask_path).dataobj) > 0
    data = np.asanyarray(img.dataobj)
    assert mask.shape == data.shape[:3]
    assert mask.sum() > 0
    assert np.all(data[mask] == 0)
    src = ANAT[rel]
    if src is not None:  # BIDS input: nothing else changed, same grid and dtype
        orig = nib.load(shared_data / (src + ".nii.gz"))
        assert np.allclose(img.affine, orig.affine)
        assert img.get_data_dtype() == orig.get_data_dtype()
        odata = np.asanyarray(orig.dataobj)
        assert np.array_equal(data[~mask], odata[~mask])
        assert (odata[mask] != 0).sum() > 1000  # real tissue was removed, not just air
        assert bytes(img.header["descrip"]).strip(b"\x00") == b""


@pytest.mark.parametrize("sub", ["sub-01", "sub-02", "sub-03", "sub-04"])
def test_qc_sees_a_face_before_none_after_and_no_brain_removed(run: SimpleNamespace,
                                                               sub: str) -> None:
    qc = _qc(run, sub)
    by_path = {im["path"]: im for im in qc["images"]}
    for rel in (r for r in ANAT if r.startswith(sub)):
        im = by_path[rel]
        assert im["defacing_metrics"]["brain_voxels_removed"] == 0
        assert all(c["passed"] for c in im["safety_checks"]), im["safety_checks"]
        if rel.endswith("_T2w.nii.gz"):
            # the niivue T2w is a slab from brow to nose: no detector sees a whole face
            assert im["role"] == "coregistered" and im["anchor"].endswith("_T1w.nii.gz")
            assert im["face_check"]["status"] in ("pass", "inconclusive")
        elif sub == "sub-04":
            # the XA30 cut surface opens the orbits and the oral cavity in a face-like
            # pattern (frontal and a little profile, no nose): a look is asked for
            assert im["face_check"]["before"]["face"] is True
            assert im["face_check"]["status"] in ("pass", "review"), im["face_check"]
            assert im["face_check"]["after"]["nose_mm"] < 9
        else:
            assert im["face_check"]["before"]["face"] is True
            assert im["face_check"]["status"] == "pass", im["face_check"]


def test_group_validates_and_scans_clean(run: SimpleNamespace) -> None:
    summary = json.loads((run.private / "reports" / "group_summary.json").read_text())
    assert summary["leak_hits"] == 0 and summary["participants_failed"] == []
    validator = json.loads((run.private / "reports" / "bids_validator.json").read_text())
    assert validator["n_errors"] == 0, validator["errors"]
    assert (run.private / "reports" / "group.html").is_file()
    rows = (run.private / "reports" / "group_qc.tsv").read_text().splitlines()
    assert len(rows) == 1 + len(ANAT)  # a header and one row per anatomical image


def test_before_images_stay_private(run: SimpleNamespace) -> None:
    for sub in ("sub-01", "sub-02", "sub-03", "sub-04"):
        private_page = run.private / "reports" / f"{sub}.html"
        shared_page = run.out / "derivatives" / "bidsdeid" / f"{sub}.html"
        assert 'alt="front, before defacing"' in private_page.read_text()
        assert ", before defacing" not in shared_page.read_text()
    assert not list(run.out.rglob("*_original*")) and not list(run.out.rglob("*_removed*"))


def test_input_unchanged(run: SimpleNamespace) -> None:
    assert tree_digest(run.study) == run.before
