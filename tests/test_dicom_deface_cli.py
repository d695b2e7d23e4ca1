"""--dicom-out with real defacing, end to end: the DICOM of an anatomical series holds
exactly the voxels of its published defaced image (dcm2niix of the written DICOM gives
the same image: same affine, same stored voxels; the removed region is zero; every
voxel outside it is the original's), and only series published as BIDS images are
written at all.

* Philips T1w (1301, classic, 170 files) through the CLI;
* XA30 T1w (5, one enhanced multi-frame file; and the same file RLE Lossless
  compressed) through the pipeline's own stages up to --dicom-out: the QC face check
  that follows fails this 2 mm head after defacing (a defacing-quality finding for the
  deface stage, not the DICOM writer), so the CLI would publish nothing to look at;
* the whole XA30 session plus a sagittal localizer through the CLI, defacing off: only
  the converted series are in OUTPUT_DIR/sourcedata;
* the bundled demo (``bidsdeid-demo``) as a user runs it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_support import dcm2niix_bin, run_dcm2niix
from pydicom.uid import RLELossless, generate_uid

from bidsdeid.cli import demo
from bidsdeid.config import DefaceOptions, RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.participant import _stages, make_context
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import NULL_PROGRESS

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow,
              pytest.mark.skipif(dcm2niix_bin() is None, reason="dcm2niix not installed")]

DESCRIPTION = {"Name": "dicomface", "BIDSVersion": "1.10.0"}


def _study(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(DESCRIPTION))
    return root


def _voxels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asanyarray(img.dataobj.get_unscaled()), img.affine


def _mask_of(out: Path, rel: str) -> np.ndarray:
    stem = Path(rel).name.replace("_T1w.nii.gz", "")
    path = out / "derivatives" / "bidsdeid" / Path(rel).parent / \
        f"{stem}_space-T1w_desc-deface_mask.nii.gz"
    return np.asanyarray(nib.load(path).dataobj) > 0


def check_defaced_dicom(dicom_dir: Path, published: Path, mask: np.ndarray,
                        original_dicom: Path, tmp: Path) -> None:
    """dcm2niix of the written DICOM == the published defaced image; zero in the
    removed region; the original's voxels everywhere else."""
    got, affine = _voxels(run_dcm2niix(dicom_dir, tmp / "written")[0])
    want, want_affine = _voxels(published)
    orig, orig_affine = _voxels(run_dcm2niix(original_dicom, tmp / "original")[0])
    assert got.shape == want.shape == orig.shape == mask.shape
    assert np.allclose(affine, want_affine, atol=1e-4)
    assert np.allclose(affine, orig_affine, atol=1e-4)
    assert np.array_equal(got, want)
    assert mask.sum() > 1000 and not got[mask].any()
    assert orig[mask].any(), "the removed region held nothing to remove"
    assert np.array_equal(got[~mask], orig[~mask])


# -- Philips classic, through the CLI ---------------------------------------------------------
def test_philips_t1w_dicom_is_defaced_like_its_image(shared_data: Path, tmp_path: Path) -> None:
    src = _study(tmp_path / "in") / "sourcedata" / "sub-ph"
    src.mkdir(parents=True)
    for p in sorted((shared_data / "dicom/philips_elition_r571").glob("1301_*")):
        shutil.copyfile(p, src / p.name)
    out, private = tmp_path / "out", tmp_path / "private"
    run_cli(tmp_path / "in", out, "participant", "--dicom-out", "--sloppy", "--nprocs", "2",
            "--skip-bids-validation", "--private-dir", private, check=0)
    rel = "sub-ph/anat/sub-ph_T1w.nii.gz"
    mask = _mask_of(out, rel)
    written = out / "sourcedata" / "sub-ph" / "1301"
    assert len(list(written.glob("*.dcm"))) == 170
    check_defaced_dicom(written, out / rel, mask, src, tmp_path)
    audit = json.loads((private / "audit/sub-ph/dicom/series-1301.json").read_text())
    assert audit["pixels"]["action"] == "defaced" and audit["pixels"]["images"] == [rel]
    assert audit["pixels"]["removed"] == int(mask.sum())  # one pixel per removed voxel
    # file by file: only zeros were written, nothing else changed
    by_instance = {int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber): p
                   for p in src.iterdir()}
    changed = 0
    for p in written.glob("*.dcm"):
        b = pydicom.dcmread(p)
        a = pydicom.dcmread(by_instance[int(b.InstanceNumber)])
        diff = a.pixel_array != b.pixel_array
        assert not b.pixel_array[diff].any()
        changed += int(diff.sum())
    assert changed > 0


# -- XA30 enhanced, through the pipeline's stages ----------------------------------------------
def _run_until_dicom_out(bids: Path, root: Path, label: str) -> ParticipantContext:
    cfg = RunConfig(bids_dir=bids, output_dir=root / "out", analysis_level="participant",
                    private_dir=root / "private", work_dir=root / "work", nprocs=2,
                    dicom_out=True, skip_bids_validation=True,
                    deface=DefaceOptions(sloppy=True))
    ctx = make_context(cfg, ProjectKey(b"d" * 32), label, NULL_PROGRESS)
    for name, fn in _stages():
        fn(ctx)
        assert not ctx.failed, [p.line() for p in ctx.problems]
        if name == "de-identify DICOM":
            return ctx
    raise AssertionError("no --dicom-out stage")


@pytest.mark.parametrize("compressed", [False, True], ids=["native", "rle"])
def test_xa30_enhanced_t1w_dicom_is_defaced_like_its_image(shared_data: Path, tmp_path: Path,
                                                           compressed: bool) -> None:
    src = _study(tmp_path / "in") / "sourcedata" / "sub-xa"
    src.mkdir(parents=True)
    original = next((shared_data / "dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl").glob(
        "*.dcm"))
    ds = pydicom.dcmread(original)
    if compressed:
        ds.compress(RLELossless, generate_instance_uid=False)
    ds.save_as(src / "t1w.dcm", enforce_file_format=True)
    ctx = _run_until_dicom_out(tmp_path / "in", tmp_path / "run", "xa")
    rel = "sub-xa/anat/sub-xa_acq-tfl_T1w.nii.gz"
    [result] = ctx.results["deface"]
    assert result.rel_path == rel and result.passed
    mask = np.asanyarray(nib.load(result.removed_mask).dataobj) > 0
    written = ctx.staging / "sourcedata" / "sub-xa" / "5"
    [out] = written.glob("*.dcm")
    assert pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID == \
        pydicom.uid.ExplicitVRLittleEndian
    single = tmp_path / "original"
    single.mkdir()
    shutil.copyfile(original, single / "t1w.dcm")
    check_defaced_dicom(written, ctx.stage_path(rel), mask, single, tmp_path)
    pixels = json.loads((ctx.audit_dir / "dicom" / "series-5.json").read_text())["pixels"]
    assert pixels["removed"] == int(mask.sum())
    assert ("decoded_from" in pixels) == compressed


# -- the XA30 session: only converted series are written ----------------------------------------
PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                 "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber")


def _localizer(dest: Path, like: Path) -> None:
    """A sagittal localizer with a face in profile (the demo head, 2 mm), of the patient
    and study of ``like``."""
    data, affine = demo.demo_volume()
    series = generate_uid()
    ref = pydicom.dcmread(like, stop_before_pixels=True)
    for i, ds in enumerate(demo.series_datasets(data, affine)[::4], 1):
        for keyword in PATIENT_STUDY:
            if keyword in ref:
                setattr(ds, keyword, ref.data_element(keyword).value)
            elif keyword in ds:
                delattr(ds, keyword)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = series, 1, i
        ds.SeriesDescription = ds.ProtocolName = "AAHead_Scout_MPR_sag"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dest.mkdir(parents=True, exist_ok=True)
        ds.save_as(dest / f"LOC{i:03d}", enforce_file_format=True)


def test_only_series_published_as_images_are_written(shared_data: Path, tmp_path: Path) -> None:
    bids = _study(tmp_path / "in")
    sub = bids / "sourcedata" / "sub-xa"
    shutil.copytree(shared_data / "dicom/siemens_xa30_enhanced", sub)
    _localizer(sub / "localizer", next((sub / "5_anat-T1w_acq-tfl").glob("*.dcm")))
    out, private = tmp_path / "out", tmp_path / "private"
    proc = run_cli(bids, out, "participant", "--dicom-out", "--deface-modalities", "none",
                   "--skip-bids-validation", "--nprocs", "2", "--private-dir", private,
                   check=0)
    table = json.loads((private / "audit/sub-xa/series.json").read_text())
    converted = {str(r["series_number"]) for r in table if r["outputs"]}
    left = {str(r["series_number"]) for r in table if not r["outputs"]}
    assert {"1", "11", "12", "13", "14", "16", "99"} <= left
    reasons = {str(r["series_number"]): r["reason"] for r in table}
    assert "localizer" in reasons["1"] and "derived" in reasons["11"]
    assert "5" in converted
    written = {p.name for p in (out / "sourcedata" / "sub-xa").iterdir()}
    assert written == converted
    records = json.loads((private / "audit/sub-xa/dicom/left_out.json").read_text())
    assert {r["series"] for r in records} == left - {"99"}  # 99 (SR) is quarantined
    text = json.dumps(records)
    assert "Scout" not in text and "ADC" not in text and "DWI" not in text  # PHI-free
    for n in left - {"99"}:
        assert f"series {n}: not written to sourcedata" in proc.stderr
    assert "series 5: anatomical series written with its face" in proc.stderr


# -- the demo ------------------------------------------------------------------------------------
def test_demo_dicom_has_no_face(tmp_path: Path) -> None:
    assert demo.main([str(tmp_path)]) == 0
    out = tmp_path / "output"
    rel = f"sub-{demo.LABEL}/anat/sub-{demo.LABEL}_T1w.nii.gz"
    mask = _mask_of(out, rel)
    written = out / "sourcedata" / f"sub-{demo.LABEL}" / "3"
    inputs = next((tmp_path / "study" / "sourcedata").rglob("IM0001")).parent
    check_defaced_dicom(written, out / rel, mask, inputs, tmp_path)
