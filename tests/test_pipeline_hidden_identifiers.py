"""Identifiers that used to slip through, each planted in real data: a birth date under
Full Dates, parts of compound names and IDs, names and dates inside BIDS labels, the
input's own tables, short numeric labels, the License of the input.

Every case searches every published byte (gunzipped, paths included) for the planted
text; a case that fails the participant also proves nothing of it was published."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from conftest import make_dicom_study

from bidsdeid.cli.run import main

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]

HEAD = "nifti/niivue_register/T1_head_ext2.nii.gz"


def _published(out: Path) -> list[tuple[str, bytes]]:
    """(path, content) of every published file, gunzipped."""
    found = []
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            found.append((str(p.relative_to(out)),
                          gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data))
    return found


def _holding(out: Path, token: str) -> list[str]:
    """Published paths whose name or content holds ``token`` (any case)."""
    needle = token.lower().encode()
    return [rel for rel, data in _published(out)
            if needle in rel.lower().encode() or needle in data.lower()]


def _plant_ge(study: Path, **attributes: str) -> None:
    for p in sorted((study / "sourcedata" / "sub-ge").rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.save_as(p)


def _run(study: Path, out: Path, *options: str) -> int:
    return main([str(study), str(out), "participant", "--deface-modalities", "none",
                 *options])


def test_a_birth_date_is_sought_whatever_dates_are_kept(shared_data: Path,
                                                       tmp_path: Path) -> None:
    """Full Dates keeps the acquisition dates, never the birth date (Table E.1-1 removes
    PatientBirthDate under every option): a label made of it is replaced, and no file
    holds it, --dicom-out included."""
    study = make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})
    _plant_ge(study, PatientBirthDate="19230405",
              SeriesDescription="func-bold_task-rest_acq-19230405",
              ProtocolName="func-bold_task-rest_acq-19230405")
    out = tmp_path / "out"
    assert _run(study, out, "--retain-dates", "full", "--dicom-out") == 0
    names = [rel for rel, _ in _published(out) if rel.endswith("_bold.nii.gz")]
    assert names == ["sub-ge/func/sub-ge_task-unknown_bold.nii.gz"]
    for form in ("19230405", "1923-04-05", "05.04.1923"):
        assert _holding(out, form) == [], form
    assert any(rel.startswith("sourcedata/") for rel, _ in _published(out))


def test_parts_of_compound_names_and_ids_are_identifiers(shared_data: Path,
                                                        tmp_path: Path) -> None:
    """A double-barrelled family name and a PatientID made of a number and a user name
    (the shape of the real XA30 ID): each part is sought, in labels too."""
    study = make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})
    _plant_ge(study, PatientName="Qzxsmith-Qzxjones^Ann", PatientID="12343@qzxuser",
              SeriesDescription="func-bold_task-qzxjones_acq-qzxuser",
              ProtocolName="func-bold_task-qzxjones_acq-qzxuser")
    out = tmp_path / "out"
    assert _run(study, out, "--dicom-out") == 0
    for token in ("qzxjones", "qzxsmith", "qzxuser", "12343"):
        assert _holding(out, token) == [], token
    assert (out / "sub-ge" / "func" / "sub-ge_task-unknown_bold.nii.gz").is_file()


def test_a_three_letter_name_inside_a_label_is_replaced(shared_data: Path,
                                                       tmp_path: Path) -> None:
    study = make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})
    _plant_ge(study, PatientName="Qzx^Johnathan", SeriesDescription="func-bold_task-qzxrest",
              ProtocolName="func-bold_task-qzxrest")
    out = tmp_path / "out"
    assert _run(study, out) == 0
    assert _holding(out, "qzx") == []
    assert (out / "sub-ge" / "func" / "sub-ge_task-unknown_bold.nii.gz").is_file()


def _bids_study(shared: Path, root: Path, name: str, *, sub: str = "01",
                ses: str | None = None, sidecar: dict[str, object] | None = None) -> Path:
    """One real head as a BIDS input ``sub-<sub>/[ses-<ses>/]anat/<name>_T1w``."""
    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat"
    folder.mkdir(parents=True)
    shutil.copyfile(shared / HEAD, folder / f"{name}_T1w.nii.gz")
    (folder / f"{name}_T1w.json").write_text(json.dumps(sidecar or {"RepetitionTime": 2.0}))
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.9.0"}))
    return root


def test_a_name_inside_an_input_label_fails_the_participant(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _bids_study(shared_data, tmp_path / "study", "sub-01_acq-jqzxfam",
                        sidecar={"RepetitionTime": 2.0, "PatientName": "QZXFAM^JOHN"})
    out = tmp_path / "out"
    assert _run(study, out) == 1
    assert not (out / "sub-01").exists()
    assert "its acq label holds an identifier" in capsys.readouterr().err
    assert _holding(out, "qzxfam") == []


def test_a_session_named_by_a_date_only_sessions_tsv_knows(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A session label that is a date, and the visit date recorded only in the input
    sessions.tsv, are identifiers: kept as a label the date fails the participant at
    once; relabelled, nothing holds it; a file name that repeats the sessions.tsv date
    fails the participant."""
    study = _bids_study(shared_data, tmp_path / "study", "sub-01_ses-20220711",
                        ses="20220711")
    (study / "sub-01" / "sub-01_sessions.tsv").write_text(
        "session_id\tacq_time\nses-20220711\t2022-07-11T10:00:00\n")
    out = tmp_path / "out"
    assert _run(study, out) == 65
    assert "the session label ses-20220711 holds an identifier" in capsys.readouterr().err
    assert not (out / "sub-01").exists()
    relabelled = tmp_path / "relabelled"
    assert _run(study, relabelled, "--relabel", "sequential") == 0
    assert (relabelled / "sub-001" / "ses-01" / "anat").is_dir()
    for form in ("20220711", "2022-07-11"):
        assert _holding(relabelled, form) == [], form
    named = _bids_study(shared_data, tmp_path / "named", "sub-01_ses-visit1_acq-d20220711",
                        ses="visit1")
    (named / "sub-01" / "sub-01_sessions.tsv").write_text(
        "session_id\tacq_time\nses-visit1\t2022-07-11T10:00:00\n")
    assert _run(named, tmp_path / "named_out") == 1
    assert not (tmp_path / "named_out" / "sub-01").exists()


def test_the_input_tables_are_identifiers_and_copied_tables_lose_their_identity_columns(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A birth date and a hospital number in extra columns of participants.tsv fail a
    file name that repeats them; an events.tsv written by stimulus software loses its
    participant, session and date columns and keeps the others."""
    study = _bids_study(shared_data, tmp_path / "study", "sub-01_acq-dob19230405")
    (study / "participants.tsv").write_text(
        "participant_id\tage\tbirth_date\tMRN\tgroup\n"
        "sub-01\t34\t1923-04-05\tQZX99887766\tcontrol\n")
    out = tmp_path / "out"
    assert _run(study, out) == 1
    assert not (out / "sub-01").exists()

    study2 = _bids_study(shared_data, tmp_path / "study2", "sub-01_acq-mprage")
    (study2 / "participants.tsv").write_text(
        "participant_id\tage\tbirth_date\tMRN\n" "sub-01\t34\t1923-04-05\tQZX99887766\n")
    func = study2 / "sub-01" / "func"
    func.mkdir()
    bold = "sub-01_task-rest_bold"
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    nib.save(img, func / f"{bold}.nii.gz")
    (func / f"{bold}.json").write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": "rest"}))
    (func / "sub-01_task-rest_events.tsv").write_text(
        "onset\tduration\ttrial_type\tparticipant\tsession\tdate\n"
        "0\t1\tgo\tQZX99887766\t001\t2022_Jul_11_1030\n"
        "2\t1\tstop\tQZX99887766\t001\t2022_Jul_11_1030\n")
    out2 = tmp_path / "out2"
    assert _run(study2, out2) == 0
    assert "columns left out" in capsys.readouterr().err
    events = (out2 / "sub-01" / "func" / "sub-01_task-rest_events.tsv").read_text()
    assert events == "onset\tduration\ttrial_type\n0\t1\tgo\n2\t1\tstop\n"
    for token in ("QZX99887766", "19230405", "1923-04-05", "2022_Jul_11"):
        assert _holding(out2, token) == [], token


def test_a_short_numeric_label_is_sought_once_relabelled(shared_data: Path,
                                                        tmp_path: Path) -> None:
    """sub-1234 under --relabel random: 1234 is too short to seek in every byte, but a
    file name that repeats it fails the participant."""
    study = _bids_study(shared_data, tmp_path / "study", "sub-1234_acq-s1234", sub="1234")
    out = tmp_path / "out"
    assert _run(study, out, "--relabel", "random") == 1
    assert not out.exists() or not any(p.name.startswith("sub-") for p in out.iterdir())
    clean = _bids_study(shared_data, tmp_path / "clean", "sub-1234_acq-mprage", sub="1234")
    out_clean = tmp_path / "out_clean"
    assert _run(clean, out_clean, "--relabel", "random") == 0
    assert not any("1234" in rel for rel, _ in _published(out_clean))


@pytest.mark.parametrize(("given", "published"), [
    ("Qzxfam Johnathan 1923-04-05", None), ("LicenseRef-Qzxfam", None),
    ("CC-BY-4.0", "CC-BY-4.0"), ("cc0-1.0", "CC0-1.0"), ("CC0", "CC0")])
def test_only_an_spdx_license_of_the_input_is_copied(shared_data: Path, tmp_path: Path,
                                                    given: str, published: str | None
                                                    ) -> None:
    study = _bids_study(shared_data, tmp_path / "study", "sub-01")
    (study / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.9.0", "License": given}))
    out = tmp_path / "out"
    assert _run(study, out) == 0
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc.get("License") == published
    assert _holding(out, "qzxfam") == []


def test_a_study_code_in_the_ids_and_the_labels_is_no_leak(shared_data: Path,
                                                           tmp_path: Path) -> None:
    """The parts of an ID are sought as words, not inside a label: a site whose IDs
    and labels share the study's code (NIMH-55123, sub-nimh01) is published."""
    study = make_dicom_study(shared_data, tmp_path / "study", {"nimh01": "ge"})
    for p in sorted((study / "sourcedata" / "sub-nimh01").rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        ds.PatientID = "NIMH-55123"
        ds.save_as(p)
    out = tmp_path / "out"
    assert _run(study, out) == 0
    assert (out / "sub-nimh01" / "func" / "sub-nimh01_task-unknown_bold.nii.gz").is_file()
    assert _holding(out, "55123") == []


def test_a_research_id_that_is_also_the_kept_label_is_published(shared_data: Path,
                                                                 tmp_path: Path) -> None:
    """PatientID 001 on the scanner, sub-001 in the study, --relabel keep: the label is
    published on purpose; a three-digit ID is sought only inside other labels."""
    study = make_dicom_study(shared_data, tmp_path / "study", {"001": "ge"})
    for p in sorted((study / "sourcedata" / "sub-001").rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        ds.PatientID = "001"
        ds.save_as(p)
    out = tmp_path / "out"
    assert _run(study, out) == 0
    assert (out / "sub-001" / "func" / "sub-001_task-unknown_bold.nii.gz").is_file()
