"""Planted identifiers: tokens in every identifying attribute, in SeriesDescription and
ProtocolName, in private tags and sequences, and a birth date that makes the
participant 93. None may reach OUTPUT_DIR; participants.tsv must say 89.

The check is independent of the tool's own leak scan: every byte of every output file
(decompressed) and every path is searched for every token.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from conftest import copy_dicom_session, run_cli, tree_digest
from pipeline_util import find_tokens, rewrite_dicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow,
              pytest.mark.xdist_group("pipeline_planted")]

PLANTED = {
    "PatientName": "Fernwhistle^Zorbulon^Quillby", "PatientID": "PID88X7731",
    "OtherPatientIDs": "OTH55Y2290", "PatientBirthName": "Gravelsby^Nonceworth",
    "PatientMotherBirthName": "Mothwick^Anniska", "PatientAddress": "17 Plumtree Wobbleton",
    "PatientTelephoneNumbers": "5550199321", "AccessionNumber": "ACC4471Q",
    "StudyID": "STU99821", "InstitutionName": "Quuxvale Infirmary",
    "InstitutionAddress": "3 Hollyhock Road Quuxvale", "InstitutionalDepartmentName":
    "Zebrafinch Unit", "StationName": "STATPLANT9", "DeviceSerialNumber": "SER77102Z",
    "ReferringPhysicianName": "Docklebury^Hermione", "PerformingPhysicianName":
    "Pemberwick^Oswinus", "OperatorsName": "Grimbleton^Ulfric",
    "NameOfPhysiciansReadingStudy": "Readsworth^Ivona", "RequestingPhysician":
    "Askwith^Beatrix", "StudyDescription": "Marblehead cohort", "ImageComments":
    "scanned Zorbulon at Quuxvale", "PatientComments": "Brackenfold notes",
    "AdditionalPatientHistory": "Thistlewood history", "PerformedProcedureStepDescription":
    "Wobbleton procedure", "RequestedProcedureDescription": "Larkspurrow request",
    "PerformedProcedureStepID": "PPS66Q1234", "MedicalRecordLocator": "MRL44Z8812",
    "EthnicGroup": "Cloudberryan", "Occupation": "Lamplighterist",
}
PRIVATE_TEXT = "PrivPlantTextKumquat"
TOKENS = ["Fernwhistle", "Zorbulon", "Quillby", "PID88X7731", "OTH55Y2290", "Gravelsby",
          "Nonceworth", "Mothwick", "Anniska", "Plumtree", "Wobbleton", "5550199321",
          "ACC4471Q", "STU99821", "Quuxvale", "Hollyhock", "Zebrafinch", "STATPLANT9",
          "SER77102Z", "Docklebury", "Hermione", "Pemberwick", "Oswinus", "Grimbleton",
          "Ulfric", "Readsworth", "Ivona", "Askwith", "Beatrix", "Marblehead", "Brackenfold",
          "Thistlewood", "Larkspurrow", "PPS66Q1234", "MRL44Z8812", "Cloudberryan",
          "Lamplighterist", PRIVATE_TEXT, "RQPLANT55"]
# the real acquisition dates of the shared sessions (left in place), in DICOM and in
# converter forms: they must not appear either
DATES = ["20180918", "2018-09-18", "20220711", "2022-07-11"]
STUDY_DAY = {"ge": dt.date(2018, 9, 18), "xa30": dt.date(2022, 7, 11)}


def plant(name: str):
    born = STUDY_DAY[name].replace(year=STUDY_DAY[name].year - 93) - dt.timedelta(days=40)

    def edit(ds: Dataset) -> None:
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        ds.SeriesDescription = f"{ds.get('SeriesDescription', '')} Zorbulon"
        ds.ProtocolName = f"{ds.get('ProtocolName', '')} Fernwhistle"
        if name == "ge":  # a task label that is a name: must not become task-zorbulon
            ds.SeriesDescription = "Axial EPI task-zorbulon"
        ds.PatientBirthDate = born.strftime("%Y%m%d")
        if "PatientAge" in ds:
            del ds.PatientAge
        ds.PatientSex = "F"
        block = ds.private_block(0x0031, "PLANTCO 01", create=True)
        block.add_new(0x01, "LO", PRIVATE_TEXT)
        block.add_new(0x02, "PN", PLANTED["PatientName"])
        request = Dataset()
        request.RequestedProcedureID = "RQPLANT55"
        request.ScheduledProcedureStepDescription = "Wobbleton step"
        ds.RequestAttributesSequence = Sequence([request])

    return edit


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("planted")
    study = root / "study"
    labels = {"ge": "Zorbulon", "xa30": "Quillby"}
    for name, label in labels.items():
        folder = copy_dicom_session(shared_data, name, study / "sourcedata" / f"sub-{label}")
        assert rewrite_dicom(folder, plant(name)) > 0
    before = tree_digest(study)
    out = root / "out"
    part = run_cli(study, out, "participant", "--deface-modalities", "none", "--relabel",
                   "random", "--include-sex", "-v", check=0)
    group = run_cli(study, out, "group", check=0)
    return SimpleNamespace(study=study, out=out, private=root / "out_private", part=part,
                           group=group, before=before)


def test_the_tokens_are_really_in_the_input(planted: SimpleNamespace) -> None:
    found = {t for _f, t in find_tokens(planted.study, TOKENS)}
    assert found == set(TOKENS)  # else this test could not fail


def test_no_planted_token_anywhere_in_the_output(planted: SimpleNamespace) -> None:
    assert sorted(planted.out.rglob("*.nii.gz"))  # something was published
    assert find_tokens(planted.out, TOKENS + DATES) == []
    # the terminal names participants by their input folder (the user's own label) and
    # nothing else from the headers
    text = planted.part.stderr + planted.part.stdout + planted.group.stderr
    text = text.replace("sub-Zorbulon", "").replace("sub-Quillby", "")
    assert [t for t in TOKENS if t.lower() in text.lower()] == []


def test_age_over_89_is_89_and_sex_only_when_asked(planted: SimpleNamespace) -> None:
    rows = [line.split("\t") for line in
            (planted.out / "participants.tsv").read_text().splitlines()]
    assert rows[0] == ["participant_id", "age", "sex"]
    assert [r[1:] for r in rows[1:]] == [["89", "F"], ["89", "F"]]
    assert all(r[0] not in ("sub-Zorbulon", "sub-Quillby") for r in rows[1:])


def test_name_in_a_task_label_is_replaced(planted: SimpleNamespace) -> None:
    bold = sorted(planted.out.rglob("*_bold.json"))
    assert len(bold) == 2
    tasks = sorted(json.loads(p.read_text())["TaskName"] for p in bold)
    assert tasks == ["fa", "unknown"]
    assert "matched an identifier" in planted.part.stderr


def test_group_scan_and_validation_pass(planted: SimpleNamespace) -> None:
    assert planted.group.returncode == 0
    summary = json.loads((planted.private / "reports" / "group_summary.json").read_text())
    assert summary["leak_hits"] == 0 and len(summary["participants_complete"]) == 2
    linkage = (planted.private / "linkage.tsv").read_text()
    assert "sub-Zorbulon" in linkage  # the way back is kept, privately


def test_input_unchanged(planted: SimpleNamespace) -> None:
    assert tree_digest(planted.study) == planted.before


def test_planted_private_tags_are_really_private(planted: SimpleNamespace) -> None:
    first = next(p for p in sorted((planted.study / "sourcedata").rglob("*.dcm")))
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    assert ds.private_block(0x0031, "PLANTCO 01")[0x01].value == PRIVATE_TEXT
