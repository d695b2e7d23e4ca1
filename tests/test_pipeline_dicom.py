"""The whole participant + group pipeline on every DICOM session of ../shared/data/dicom
(each a participant), plus one participant with two sessions built from copies.

One conversion (module fixture, defacing off for speed) is shared by the tests below.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from conftest import make_dicom_study, run_cli, tree_digest
from nibabel.nifti1 import Nifti1Header
from pipeline_util import all_files, decompressed, two_session_participant

from bidsdeid.convert.dcm2niix import binary

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow,
              pytest.mark.xdist_group("pipeline_dicom")]

PARTICIPANTS = {"philips": "philips", "xa30": "xa30", "ge": "ge"}
EXPECTED = [".bidsignore", "README", "dataset_description.json", "derivatives/bidsdeid/sub-ge.html", "derivatives/bidsdeid/sub-ge_qc.json", "derivatives/bidsdeid/sub-philips.html", "derivatives/bidsdeid/sub-philips_qc.json", "derivatives/bidsdeid/sub-twin.html", "derivatives/bidsdeid/sub-twin_qc.json", "derivatives/bidsdeid/sub-xa30.html", "derivatives/bidsdeid/sub-xa30_qc.json", "participants.json", "participants.tsv", "sub-ge/func/sub-ge_task-unknown_bold.json", "sub-ge/func/sub-ge_task-unknown_bold.nii.gz", "sub-ge/sub-ge_scans.tsv", "sub-philips/anat/sub-philips_T1w.json", "sub-philips/anat/sub-philips_T1w.nii.gz", "sub-philips/dwi/sub-philips_dwi.bval", "sub-philips/dwi/sub-philips_dwi.bvec", "sub-philips/dwi/sub-philips_dwi.json", "sub-philips/dwi/sub-philips_dwi.nii.gz", "sub-philips/fmap/sub-philips_magnitude1.json", "sub-philips/fmap/sub-philips_magnitude1.nii.gz", "sub-philips/fmap/sub-philips_magnitude2.json", "sub-philips/fmap/sub-philips_magnitude2.nii.gz", "sub-philips/fmap/sub-philips_phase1.json", "sub-philips/fmap/sub-philips_phase1.nii.gz", "sub-philips/fmap/sub-philips_phase2.json", "sub-philips/fmap/sub-philips_phase2.nii.gz", "sub-philips/sub-philips_scans.tsv", "sub-twin/ses-1/func/sub-twin_ses-1_task-unknown_bold.json", "sub-twin/ses-1/func/sub-twin_ses-1_task-unknown_bold.nii.gz", "sub-twin/ses-1/sub-twin_ses-1_scans.tsv", "sub-twin/ses-2/func/sub-twin_ses-2_task-unknown_bold.json", "sub-twin/ses-2/func/sub-twin_ses-2_task-unknown_bold.nii.gz", "sub-twin/ses-2/sub-twin_ses-2_scans.tsv", "sub-twin/sub-twin_sessions.tsv", "sub-xa30/anat/sub-xa30_acq-tfl_T1w.json", "sub-xa30/anat/sub-xa30_acq-tfl_T1w.nii.gz", "sub-xa30/dwi/sub-xa30_dir-PA_dwi.bval", "sub-xa30/dwi/sub-xa30_dir-PA_dwi.bvec", "sub-xa30/dwi/sub-xa30_dir-PA_dwi.json", "sub-xa30/dwi/sub-xa30_dir-PA_dwi.nii.gz", "sub-xa30/fmap/sub-xa30_magnitude1.json", "sub-xa30/fmap/sub-xa30_magnitude1.nii.gz", "sub-xa30/fmap/sub-xa30_magnitude2.json", "sub-xa30/fmap/sub-xa30_magnitude2.nii.gz", "sub-xa30/fmap/sub-xa30_phasediff.json", "sub-xa30/fmap/sub-xa30_phasediff.nii.gz", "sub-xa30/func/sub-xa30_task-fa_bold.json", "sub-xa30/func/sub-xa30_task-fa_bold.nii.gz", "sub-xa30/perf/sub-xa30_asl.json", "sub-xa30/perf/sub-xa30_asl.nii.gz", "sub-xa30/perf/sub-xa30_aslcontext.tsv", "sub-xa30/sub-xa30_scans.tsv"]
DESCRIPTIONS = ("ADNI_Sag3D", "DTIphase_S2MB2", "fcMRI Field Mapping", "3DpCASL",
                "Axial EPI-FMRI", "DCM2NIIX regression", "anat-T1w_acq-tfl", "DWI_dir80_PA",
                "gre_field_mapping", "asl_2d_tra", "PhoenixZIPReport", "Cheng test")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("pipeline")
    study = make_dicom_study(shared_data, root / "study", PARTICIPANTS)
    two_session_participant(shared_data, study / "sourcedata" / "sub-twin")
    before = tree_digest(study)
    out, private = root / "out", root / "out_private"
    part = run_cli(study, out, "participant", "--deface-modalities", "none", "--nprocs", "2",
                   "-v", check=0)
    group = run_cli(study, out, "group", check=0)
    return SimpleNamespace(root=root, study=study, out=out, private=private, before=before,
                           participant=part, group=group)


def test_expected_bids_files(run: SimpleNamespace) -> None:
    assert all_files(run.out) == sorted(EXPECTED)


def test_group_level_validates_with_no_error_and_no_leak(run: SimpleNamespace) -> None:
    report = json.loads((run.private / "reports" / "bids_validator.json").read_text())
    assert report["n_errors"] == 0, report["errors"]
    summary = json.loads((run.private / "reports" / "group_summary.json").read_text())
    assert summary["leak_hits"] == 0
    assert summary["participants_failed"] == []
    assert "valid BIDS" in run.group.stdout


def test_input_is_unchanged(run: SimpleNamespace) -> None:
    assert tree_digest(run.study) == run.before


def test_terminal_never_shows_descriptions_but_the_audit_has_them(run: SimpleNamespace) -> None:
    text = run.participant.stdout + run.participant.stderr + run.group.stderr
    for d in DESCRIPTIONS:
        assert d.lower() not in text.lower(), d
    assert "series 1301: anat/T1w" in text  # the decision is printed
    table = (run.private / "audit" / "sub-philips" / "series.tsv").read_text()
    assert "ADNI_Sag3D MPRAGE" in table and "left out" in table
    rows = list(csv.DictReader(io.StringIO(table), delimiter="\t"))
    assert {r["series_number"] for r in rows} == {"1301", "1901", "1903", "2001", "2301"}
    xa30 = json.loads((run.private / "audit" / "sub-xa30" / "series.json").read_text())
    reasons = {r["series_number"]: r["reason"] for r in xa30 if r["decision"] == "exclude"}
    assert set(reasons) == {11, 12, 13, 14, 16, 99}
    assert all(reasons[n].startswith("derived") for n in (11, 12, 13, 14, 16))


def test_anat_and_bold_sidecars_keep_what_analysis_needs(run: SimpleNamespace) -> None:
    for rel in ("sub-philips/anat/sub-philips_T1w.json", "sub-xa30/anat/sub-xa30_acq-tfl_T1w.json"):
        side = json.loads((run.out / rel).read_text())
        for key in ("RepetitionTime", "EchoTime", "InversionTime", "FlipAngle"):
            assert key in side, (rel, key)
    for rel, task in (("sub-xa30/func/sub-xa30_task-fa_bold.json", "fa"),
                      ("sub-ge/func/sub-ge_task-unknown_bold.json", "unknown")):
        side = json.loads((run.out / rel).read_text())
        assert side["TaskName"] == task
        for key in ("SliceTiming", "PhaseEncodingDirection", "RepetitionTime",
                    "TotalReadoutTime"):
            assert key in side, (rel, key)
    asl = json.loads((run.out / "sub-xa30/perf/sub-xa30_asl.json").read_text())
    assert asl["M0Type"] == "Included" and asl["TotalAcquiredPairs"] == 3
    assert asl["BackgroundSuppression"] is False and asl["ArterialSpinLabelingType"] == "PCASL"
    context = (run.out / "sub-xa30/perf/sub-xa30_aslcontext.tsv").read_text().split()
    assert context == ["volume_type", "m0scan"] + ["label", "control"] * 3
    pd = json.loads((run.out / "sub-xa30/fmap/sub-xa30_phasediff.json").read_text())
    assert pd["EchoTime1"] < pd["EchoTime2"]
    assert "bids::sub-xa30/func/sub-xa30_task-fa_bold.nii.gz" in pd["IntendedFor"]


def test_sidecars_hold_only_allowed_fields(run: SimpleNamespace) -> None:
    banned = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
              "StationName", "DeviceSerialNumber", "SeriesDescription", "ProtocolName",
              "ImageComments", "AcquisitionDateTime", "AcquisitionTime", "PatientName",
              "StudyInstanceUID", "SeriesInstanceUID", "ProcedureStepDescription",
              "StudyDescription", "BidsGuess", "ConversionSoftware")
    for p in run.out.rglob("sub-*/**/*.json"):
        side = json.loads(p.read_text())
        assert not set(banned) & set(side), p
        codes = [c["CodeValue"] for c in side["DeidentificationMethodCodeSequence"]]
        assert "113100" in codes and "113107" in codes
        assert side["DeidentificationMethod"][0].startswith("bidsdeid")


def test_nifti_headers_are_clean_and_gzip_is_reproducible(run: SimpleNamespace) -> None:
    images = sorted(run.out.rglob("*.nii.gz"))
    assert len(images) == 16
    for p in images:
        raw = p.read_bytes()
        assert raw[4:8] == b"\x00\x00\x00\x00", f"{p.name}: gzip mtime is set"
        data = decompressed(p)
        hdr = Nifti1Header.from_fileobj(io.BytesIO(data[:352]), check=False)
        for field in ("descrip", "aux_file", "db_name", "intent_name"):
            assert bytes(hdr[field]).strip(b"\x00") == b"", (p.name, field)
        assert int(hdr["vox_offset"]) == 352 and data[348:352] == b"\x00" * 4


def test_voxels_and_affine_equal_plain_dcm2niix(run: SimpleNamespace, tmp_path: Path) -> None:
    for label in ("xa30", "philips"):
        plain = tmp_path / label
        plain.mkdir()
        subprocess.run([binary(), "-z", "y", "-f", "%s_%r", "-o", str(plain),
                        str(run.study / "sourcedata" / f"sub-{label}")], check=True,
                       capture_output=True)
        rows = json.loads((run.private / "audit" / f"sub-{label}" / "series.json").read_text())
        for row in rows:
            candidates = [nib.load(p) for p in plain.glob(f"{row['series_number']}_*.nii.gz")]
            for rel in row["outputs"].split():
                ours = nib.load(run.out / rel)
                same = [c for c in candidates if c.shape == ours.shape
                        and np.allclose(c.affine, ours.affine)
                        and np.array_equal(np.asanyarray(c.dataobj), np.asanyarray(ours.dataobj))]
                assert same, f"{rel}: no plain dcm2niix image with the same voxels and affine"


def test_tables(run: SimpleNamespace) -> None:
    participants = (run.out / "participants.tsv").read_text().splitlines()
    assert participants[0] == "participant_id\tage"  # no sex without --include-sex
    ages = dict(line.split("\t") for line in participants[1:])
    assert ages == {"sub-ge": "n/a", "sub-philips": "41", "sub-twin": "n/a", "sub-xa30": "31"}
    sessions = list(csv.DictReader(io.StringIO(
        (run.out / "sub-twin/sub-twin_sessions.tsv").read_text()), delimiter="\t"))
    times = [dt.datetime.fromisoformat(r["acq_time"]) for r in sessions]
    assert [r["session_id"] for r in sessions] == ["ses-1", "ses-2"]
    assert times[1] - times[0] == dt.timedelta(days=35)  # intervals survive the shift
    assert all(t.year <= 1925 for t in times)
    for tsv in run.out.rglob("*_scans.tsv"):
        rows = list(csv.DictReader(io.StringIO(tsv.read_text()), delimiter="\t"))
        assert list(rows[0]) == ["filename", "acq_time"]
        for r in rows:
            assert (tsv.parent / r["filename"]).is_file()
            assert dt.datetime.fromisoformat(r["acq_time"]).year <= 1925


def test_private_side(run: SimpleNamespace) -> None:
    linkage = (run.private / "linkage.tsv").read_text()
    assert linkage.startswith("original_participant_id\tparticipant_id")
    assert (run.private / "state" / "sub-xa30" / "identifiers.json").is_file()
    leak = json.loads((run.private / "audit" / "sub-xa30" / "leakscan.json").read_text())
    assert leak["hits"] == [] and leak["files_scanned"] >= 17


def test_rerun_with_the_same_key_is_byte_identical(run: SimpleNamespace) -> None:
    out2, private2 = run.root / "out2", run.root / "out2_private"
    private2.mkdir(mode=0o700)
    shutil.copy2(run.private / "key", private2 / "key")
    run_cli(run.study, out2, "participant", "--participant-label", "xa30", "twin",
            "--deface-modalities", "none", check=0)
    for label in ("xa30", "twin"):
        first = {f: (run.out / f).read_bytes() for f in all_files(run.out)
                 if f.startswith(f"sub-{label}/")}
        second = {f: (out2 / f).read_bytes() for f in all_files(out2)
                  if f.startswith(f"sub-{label}/")}
        assert first.keys() == second.keys()
        assert [f for f in first if first[f] != second[f]] == []
