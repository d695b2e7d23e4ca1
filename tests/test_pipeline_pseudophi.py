"""The pseudo-PHI reference sessions of ../shared/data/deid (a Siemens Prisma phantom
with 55+ planted attributes, a TCIA body MRI with fake names and addresses): converted,
valid, and none of their identifying values in the output."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pydicom
import pytest
from conftest import run_cli
from pipeline_util import all_files, find_tokens

from bidsdeid.privacy.identifiers import GENERIC_WORDS

pytestmark = [pytest.mark.needs_shared, pytest.mark.xdist_group("pseudophi")]

SESSIONS = {"penn": "deid/penn_prisma_pseudophi/dicom", "tcia": "deid/tcia_pseudophi_mr/dicom"}
KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "InstitutionName",
            "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
            "DeviceSerialNumber", "StudyDescription", "SeriesDescription", "ProtocolName",
            "PatientAddress", "PatientTelephoneNumbers", "ImageComments",
            "RequestedProcedureDescription", "PerformedProcedureStepDescription",
            "MedicalRecordLocator", "PatientComments", "AdditionalPatientHistory")


def _identifying_values(folder: Path) -> set[str]:
    """Names (and their parts), dates in two forms, and the values of identifying
    attributes, from every header of the input."""
    values: set[str] = set()
    for p in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        for elem in ds.iterall():
            if elem.VR == "PN" and elem.value:
                text = str(elem.value)
                values.update(part for part in text.replace("^", " ").split() if len(part) >= 4)
            elif elem.VR == "DA" and elem.value and len(str(elem.value)) == 8:
                d = dt.datetime.strptime(str(elem.value), "%Y%m%d")
                values.update({d.strftime("%Y%m%d"), d.strftime("%Y-%m-%d")})
            elif elem.keyword in KEYWORDS and elem.value and len(str(elem.value)) >= 5:
                values.add(str(elem.value).strip())
    placeholders = GENERIC_WORDS | {"REMOVE", "DELETE", "NONE"}  # "REMOVE^ME" is no one
    return {v for v in values if v.strip() and v.strip().upper() not in placeholders}


@pytest.mark.parametrize("name,expected", [
    ("penn", ["sub-penn/func/sub-penn_task-rest_dir-AP_sbref.nii.gz"]),
    ("tcia", ["sub-tcia/anat/sub-tcia_T2w.nii.gz"]),
])
def test_pseudo_phi_session(shared_data: Path, tmp_path: Path, name: str,
                            expected: list[str]) -> None:
    study = tmp_path / "study"
    shutil.copytree(shared_data / SESSIONS[name], study / "sourcedata" / f"sub-{name}")
    out = tmp_path / "out"
    run_cli(study, out, "participant", "--deface-modalities", "none", check=0)
    run_cli(study, out, "group", check=0)
    assert [f for f in all_files(out) if f.endswith(".nii.gz")] == expected
    values = _identifying_values(study / "sourcedata")
    assert len(values) > 10  # the planted values are really there
    assert find_tokens(out, sorted(values)) == []
