"""Participant IDs: --id-map (the site's table) and --relabel random (a keyed hash that
gives the same person the same label in every run with the same key)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from pipeline_util import rewrite_dicom
from site_support import copy_session

from bidsdeid.errors import DataError, UsageError
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.site import idmap


def _map(tmp_path: Path, text: str, name: str = "ids.tsv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the file -------------------------------------------------------------------------------
def test_a_map_by_label_or_patient_id(tmp_path: Path) -> None:
    m = idmap.load(_map(tmp_path, "# site table\noriginal\tnew\tage\tsex\n"
                                  "sub-01\tsub-A001\t33\tfemale\n"
                                  "PID-9\tB002\tn/a\t\n\n"))
    assert m.lookup("01") == idmap.Entry("sub-01", "A001", 33.0, "F", 3)
    assert m.lookup("zz", ["PID-9"]).label == "B002"  # type: ignore[union-attr]
    assert m.lookup("zz", ["other"]) is None
    assert m.lookup("01").demographics() == {"age": 33.0, "sex": "F"}  # type: ignore[union-attr]
    with pytest.raises(DataError) as err:
        m.require("zz", ["other"])
    assert "sub-zz" in err.value.message and "other" not in err.value.message


def test_csv_and_the_linkage_file_of_an_earlier_run_are_maps(tmp_path: Path) -> None:
    assert idmap.load(_map(tmp_path, "source_id,new_label\n01,X1\n", "m.csv")).lookup(
        "01").label == "X1"  # type: ignore[union-attr]
    linkage = ("original_participant_id\tparticipant_id\toriginal_session_id\tsession_id\t"
               "method\tdate_offset_days\nsub-01\tsub-abc\tn/a\tn/a\trandom\t-73421\n")
    assert idmap.load(_map(tmp_path, linkage, "linkage.tsv")).lookup(
        "01").label == "abc"  # type: ignore[union-attr]


@pytest.mark.parametrize("text,words", [
    ("original\tnew\n01\tA-1\n", ["line 2", "letters and digits"]),
    ("original\tnew\n01\tA1\n01\tA2\n", ["line 3", "same original as line 2"]),
    ("orig\tnew\n01\tA1\n", ["line 1", "no original column"]),
    ("original\tnew\tage\n01\tA1\told\n", ["line 2", "age"]),
    ("original\tnew\tsex\n01\tA1\tX\n", ["line 2", "sex"]),
    ("", ["empty"]),
])
def test_mistakes_name_the_file_and_line(tmp_path: Path, text: str, words: list[str]) -> None:
    path = _map(tmp_path, text)
    with pytest.raises(UsageError) as err:
        idmap.load(path)
    assert str(path) in err.value.message
    for word in words:
        assert word in err.value.message, err.value.message


# -- whole runs -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_ge(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sub-a and sub-b: the GE session twice, sub-b with another PatientID and sex M."""
    study = tmp_path_factory.mktemp("idmap") / "study"
    copy_session(shared_data, "ge", study / "sourcedata" / "sub-a")
    b = copy_session(shared_data, "ge", study / "sourcedata" / "sub-b")

    def other_patient(ds):
        ds.PatientID = "PIDB77"
        ds.PatientSex = "M"

    rewrite_dicom(b, other_patient)
    return study


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.needs_shared
@pytest.mark.slow
def test_the_id_map_drives_labels_and_demographics(two_ge: Path, tmp_path: Path) -> None:
    ids = _map(tmp_path, "original\tnew\tage\tsex\nsub-a\tsite101\t33\tO\n"
                         "PIDB77\tsite202\t95\tn/a\n")
    out = tmp_path / "out"
    run_cli(two_ge, out, "participant", "--id-map", ids, "--deface-modalities", "none",
            "--include-sex", check=0)
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-site101", "sub-site202"]
    rows = {r["participant_id"]: r for r in _tsv(out / "participants.tsv")}
    assert rows["sub-site101"]["age"] == "33" and rows["sub-site101"]["sex"] == "O"
    assert rows["sub-site202"]["age"] == "89"  # replacement ages are capped too
    assert rows["sub-site202"]["sex"] == "M"  # no replacement sex: the scanner's
    linkage = {r["original_participant_id"]: r for r in
               _tsv(tmp_path / "out_private" / "linkage.tsv")}
    assert linkage["sub-a"]["participant_id"] == "sub-site101"
    assert linkage["sub-b"]["method"] == "idmap"


@pytest.mark.needs_shared
@pytest.mark.slow
def test_a_missing_entry_fails_that_participant_by_name(two_ge: Path, tmp_path: Path) -> None:
    ids = _map(tmp_path, "original\tnew\nsub-a\tsite101\n")
    out = tmp_path / "out"
    proc = run_cli(two_ge, out, "participant", "--id-map", ids, "--deface-modalities", "none",
                   check=65)  # the input lacks what the run needs: bad data
    assert "sub-b has no entry in the id map ids.tsv" in proc.stderr
    assert "PIDB77" not in proc.stderr + proc.stdout  # the participant, never the patient
    assert (out / "sub-site101").is_dir()
    assert not (out / "sub-b").exists() and len(list(out.glob("sub-*"))) == 1


def test_id_map_and_relabel_are_alternatives(tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "sourcedata" / "sub-a").mkdir(parents=True)
    ids = _map(tmp_path, "original\tnew\na\tb\n")
    proc = run_cli(study, tmp_path / "out", "participant", "--id-map", ids, "--relabel",
                   "random", check=64)
    assert "alternatives" in proc.stderr
    bad = _map(tmp_path, "original\tnew\na\tb-1\n", "bad.tsv")
    proc = run_cli(study, tmp_path / "out", "participant", "--id-map", bad, check=64)
    assert f"{bad}: line 2" in proc.stderr


@pytest.mark.needs_shared
@pytest.mark.slow
def test_random_labels_are_the_same_in_every_run_with_the_key(two_ge: Path,
                                                              tmp_path: Path) -> None:
    """Two separate output dirs (a later upload) sharing the site's key: the same labels;
    another key: other labels."""
    first, later, other = tmp_path / "first", tmp_path / "later", tmp_path / "other"
    args = ("participant", "--relabel", "random", "--deface-modalities", "none",
            "--participant-label", "a")
    run_cli(two_ge, first, *args, check=0)
    (tmp_path / "later_private").mkdir(mode=0o700)
    shutil.copy(tmp_path / "first_private" / "key", tmp_path / "later_private" / "key")
    run_cli(two_ge, later, *args, check=0)
    labels = [sorted(p.name for p in d.glob("sub-*")) for d in (first, later)]
    key = ProjectKey.load_or_create(tmp_path / "first_private")
    assert labels[0] == labels[1] == [f"sub-{key.pseudonym('participant', 'a')}"]
    run_cli(two_ge, other, *args, check=0)
    assert sorted(p.name for p in other.glob("sub-*")) != labels[0]
