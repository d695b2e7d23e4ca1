"""A head that would be published with its face outside anat/ is left out
(bidsdeid/bids/exposure.py): a BIDS input filed under func/ or fmap/, a DICOM T1w
whose description calls it a field map (its --dicom-out series included); a misspelt
--deface-modalities is refused instead of leaving every image undefaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import run_cli
from pydicom.uid import generate_uid

from bidsdeid.bids.exposure import face_exposed, sidecar_says_epi
from bidsdeid.cli.run import main

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]

HEAD = "nifti/ds000031/ds000031_sub-01_ses-006_run-001_T1w.nii.gz"  # 0.93 mm, whole face


def _save(img: nib.Nifti1Image, path: Path, sidecar: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    Path(str(path).replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))


def test_a_head_filed_outside_anat_is_left_out(shared_data: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    sub = study / "sub-01"
    head = nib.load(str(shared_data / HEAD))
    _save(head, sub / "anat" / "sub-01_T1w.nii.gz", {"RepetitionTime": 2.3})
    three_d = nib.Nifti1Image(np.asanyarray(head.dataobj), head.affine, head.header)
    _save(three_d, sub / "func" / "sub-01_task-rest_bold.nii.gz",
          {"RepetitionTime": 2.0, "TaskName": "rest"})
    _save(three_d, sub / "fmap" / "sub-01_magnitude1.nii.gz", {"EchoTime": 0.005})
    # a real field map's resolution: 3 mm, published as it is
    coarse = nib.Nifti1Image(np.ones((80, 80, 53), np.int16), np.diag([3.0, 3.0, 3.0, 1.0]))
    _save(coarse, sub / "fmap" / "sub-01_acq-coarse_magnitude1.nii.gz", {"EchoTime": 0.005})
    (study / "dataset_description.json").write_text(json.dumps({"Name": "x",
                                                                "BIDSVersion": "1.9.0"}))
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--deface-modalities", "none"]) == 65
    err = capsys.readouterr().err
    for rel in ("func/sub-01_task-rest_bold.nii.gz", "fmap/sub-01_magnitude1.nii.gz"):
        assert f"sub-01/{rel}: left out: a 0.9 mm head image outside anat/" in err, err
        assert not (out / "sub-01" / rel).exists()
    assert (out / "sub-01" / "anat" / "sub-01_T1w.nii.gz").is_file()  # none: by choice
    assert (out / "sub-01" / "fmap" / "sub-01_acq-coarse_magnitude1.nii.gz").is_file()


def _copy_series(src_files: list[Path], dest: Path, number: int, description: str) -> None:
    """A copy of a DICOM series as a series of its own, with another description."""
    series_uid = generate_uid(entropy_srcs=[description, str(number)])
    dest.mkdir(parents=True)
    for i, f in enumerate(src_files):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[description, str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = number
        ds.SeriesDescription = ds.ProtocolName = description
        ds.save_as(dest / f"{number}_{i:04d}.dcm")


def test_a_dicom_t1w_described_as_a_field_map_is_not_published(shared_data: Path,
                                                              tmp_path: Path) -> None:
    t1w = sorted((shared_data / "dicom" / "philips_elition_r571").glob("1301_*"))
    study = tmp_path / "study"
    src = study / "sourcedata" / "sub-p"
    (src / "t1").mkdir(parents=True)
    for f in t1w:
        shutil.copyfile(f, src / "t1" / f.name)
    _copy_series(t1w, src / "copy", 1302, "MPRAGE fieldmap")
    out = tmp_path / "out"
    proc = run_cli(study, out, "participant", "--deface-modalities", "none", "--dicom-out")
    assert proc.returncode == 65, proc.stderr
    assert "series 1302: left out: a 1.0 mm head image outside anat/" in proc.stderr
    published = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "sub-p/anat/sub-p_T1w.nii.gz" in published
    assert not [p for p in published if "/fmap/" in p or "1302" in p], published


def test_the_rule_looks_at_resolution_extent_and_datatype(tmp_path: Path) -> None:
    def image(shape: tuple[int, ...], mm: float) -> Path:
        path = tmp_path / f"{'x'.join(map(str, shape))}_{mm}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.diag([mm, mm, mm, 1.0])),
                 path)
        return path

    head = image((160, 200, 200), 1.0)
    assert face_exposed(head, "fmap", echo_planar=False)
    assert face_exposed(head, "perf", echo_planar=False)
    assert face_exposed(head, "anat", echo_planar=False) is None  # defaced instead
    assert face_exposed(head, "func", echo_planar=True) is None  # EPI is exempt
    assert face_exposed(image((80, 80, 53), 3.0), "fmap", echo_planar=False) is None
    assert face_exposed(image((200, 200, 20), 1.0), "fmap", echo_planar=False)  # 2 axes
    assert face_exposed(image((60, 60, 20), 1.0), "fmap", echo_planar=False) is None
    # BIDS inputs: EPI as the sidecar or the shape of a time series tells
    assert sidecar_says_epi("sbref", {"TotalReadoutTime": 0.05}, 1)  # a 1.25 mm sbref
    assert sidecar_says_epi("epi", {"PulseSequenceType": "SE-EPI"}, 2)
    assert sidecar_says_epi("bold", {}, 200)
    assert not sidecar_says_epi("bold", {"RepetitionTime": 2.0}, 1)  # a T1w, copied
    assert not sidecar_says_epi("magnitude1", {"EchoTime": 0.005}, 1)


def test_a_misspelt_deface_modality_is_refused(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    for bad in (["T1"], ["T1w", "flair2"], ["none", "T1w"]):
        proc = run_cli(study, tmp_path / "out", "participant", "--deface-modalities", *bad)
        assert proc.returncode == 64, proc.stderr
        assert "--deface-modalities" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert main([str(study), str(tmp_path / "out"), "participant", "--deface-modalities",
                 "t1w", "FLAIR", "--dry-run"]) != 64  # any case, known suffixes
