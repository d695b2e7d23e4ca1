"""BIDS NIfTI inputs (read with pybids): the same scrubbing and relabelling as DICOM,
images copied with cleared header text, filters honoured."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli, tree_digest
from nibabel.nifti1 import Nifti1Header
from pipeline_util import all_files, find_tokens

pytestmark = [pytest.mark.needs_shared, pytest.mark.xdist_group("bids_inputs")]

TOKENS = ["Fernwhistle", "Zorbulon", "Quuxvale", "STATPLANT9", "2014-05-06", "20140506",
          "Grimbleton", "Wobbleton"]


def _with_descrip(src: Path, dst: Path, text: bytes) -> None:
    raw = gzip.decompress(src.read_bytes())
    hdr = Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
    hdr["descrip"] = text
    dst.write_bytes(gzip.compress(hdr.binaryblock + raw[348:], compresslevel=1))


@pytest.fixture()
def bids_study(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "study"
    ses = root / "sub-Fernwhistle" / "ses-pre"
    (ses / "anat").mkdir(parents=True)
    (ses / "func").mkdir()
    src = shared_data / "nifti" / "ds000031" / "ds000031_sub-01_ses-006_run-001_T1w.nii.gz"
    _with_descrip(src, ses / "anat" / "sub-Fernwhistle_ses-pre_run-001_T1w.nii.gz",
                  b"Zorbulon 20140506")
    (ses / "anat" / "sub-Fernwhistle_ses-pre_run-001_T1w.json").write_text(json.dumps({
        "RepetitionTime": 1.9, "InstitutionName": "Quuxvale Infirmary",
        "StationName": "STATPLANT9", "SeriesDescription": "Fernwhistle t1",
        "AcquisitionDateTime": "2014-05-06T10:11:12", "PatientName": "Fernwhistle^Zorbulon"}))
    (root / "T1w.json").write_text(json.dumps({"EchoTime": 0.00249}))  # inherited
    bold = nib.Nifti1Image(np.arange(4 * 4 * 3 * 5, dtype=np.int16).reshape(4, 4, 3, 5),
                           np.diag([3.0, 3.0, 3.0, 1.0]))
    bold.header["aux_file"] = b"Wobbleton"
    bold.header.set_xyzt_units("mm", "sec")
    bold.header["pixdim"][4] = 2.0
    nib.save(bold, ses / "func" / "sub-Fernwhistle_ses-pre_task-rest_bold.nii.gz")
    (ses / "func" / "sub-Fernwhistle_ses-pre_task-rest_bold.json").write_text(json.dumps({
        "RepetitionTime": 2.0, "TaskName": "rest", "ImageComments": "Grimbleton"}))
    (ses / "func" / "sub-Fernwhistle_ses-pre_task-rest_events.tsv").write_text(
        "onset\tduration\ttrial_type\n0\t1\tgo\n")
    (ses / "sub-Fernwhistle_ses-pre_scans.tsv").write_text(
        "filename\tacq_time\toperator\n"
        "anat/sub-Fernwhistle_ses-pre_run-001_T1w.nii.gz\t2014-05-06T10:11:12\tGrimbleton\n"
        "func/sub-Fernwhistle_ses-pre_task-rest_bold.nii.gz\t2014-05-06T10:31:12\tGrimbleton\n")
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.9.0", "License": "CC0"}))
    return root


def test_bids_input_is_scrubbed_relabelled_and_valid(bids_study: Path, tmp_path: Path,
                                                     shared_data: Path) -> None:
    before = tree_digest(bids_study)
    out = tmp_path / "out"
    run_cli(bids_study, out, "participant", "--relabel", "sequential", "--deface-modalities",
            "none", check=0)
    run_cli(bids_study, out, "group", check=0)
    assert tree_digest(bids_study) == before
    subject = [f for f in all_files(out) if f.startswith("sub-")]
    assert subject == [
        "sub-001/ses-01/anat/sub-001_ses-01_run-001_T1w.json",
        "sub-001/ses-01/anat/sub-001_ses-01_run-001_T1w.nii.gz",
        "sub-001/ses-01/func/sub-001_ses-01_task-rest_bold.json",
        "sub-001/ses-01/func/sub-001_ses-01_task-rest_bold.nii.gz",
        "sub-001/ses-01/func/sub-001_ses-01_task-rest_events.tsv",
        "sub-001/ses-01/sub-001_ses-01_scans.tsv",
        "sub-001/sub-001_sessions.tsv",
    ]
    assert find_tokens(out, TOKENS) == []
    t1 = json.loads((out / "sub-001/ses-01/anat/sub-001_ses-01_run-001_T1w.json").read_text())
    assert t1["RepetitionTime"] == 1.9 and t1["EchoTime"] == 0.00249  # inheritance applied
    assert "InstitutionName" not in t1 and "SeriesDescription" not in t1
    ours = nib.load(out / "sub-001/ses-01/anat/sub-001_ses-01_run-001_T1w.nii.gz")
    theirs = nib.load(shared_data / "nifti/ds000031/ds000031_sub-01_ses-006_run-001_T1w.nii.gz")
    assert np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
    assert np.array_equal(ours.affine, theirs.affine)
    assert bytes(ours.header["descrip"]).strip(b"\0") == b""
    rows = list(csv.DictReader(io.StringIO(
        (out / "sub-001/ses-01/sub-001_ses-01_scans.tsv").read_text()), delimiter="\t"))
    assert list(rows[0]) == ["filename", "acq_time"]  # no operator column
    times = [dt.datetime.fromisoformat(r["acq_time"]) for r in rows]
    assert times[1] - times[0] == dt.timedelta(minutes=20) and times[0].year <= 1925
    assert json.loads((out / "dataset_description.json").read_text())["License"] == "CC0"


def test_bids_filter_file_selects_images(bids_study: Path, tmp_path: Path) -> None:
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"task": "nback"}, "t1w": {"run": 1}}))
    out = tmp_path / "out"
    run_cli(bids_study, out, "participant", "--bids-filter-file", filt, "--deface-modalities",
            "none", "--relabel", "sequential", check=0)
    images = [f for f in all_files(out) if f.endswith(".nii.gz")]
    assert images == ["sub-001/ses-01/anat/sub-001_ses-01_run-001_T1w.nii.gz"]
    shutil.rmtree(out)
