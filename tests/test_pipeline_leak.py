"""A leak that gets past the scrubber is caught by the participant leak scan, and then
nothing of that participant is published (the scan is the last line of defence)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_dicom_session, make_dicom_study
from nibabel.nifti1 import Nifti1Header

from bidsdeid.bids import sidecar, tables
from bidsdeid.cli.run import main
from bidsdeid.context import ParticipantContext
from bidsdeid.utils import gz
from bidsdeid.utils.atomic import write_bytes

pytestmark = [pytest.mark.needs_shared, pytest.mark.xdist_group("pipeline_leak")]


@pytest.fixture()
def ge_study(shared_data: Path, tmp_path: Path) -> Path:
    return make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})


def _run(study: Path, out: Path) -> int:
    return main([str(study), str(out), "participant", "--deface-modalities", "none"])


def _hits(out: Path) -> list[dict[str, Any]]:
    audit = out.with_name(out.name + "_private") / "audit" / "sub-ge" / "leakscan.json"
    return json.loads(audit.read_text())["hits"]


def test_scrubber_letting_institution_through_is_caught(ge_study: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    real_scrub = sidecar.scrub

    def leaky(raw: dict[str, Any], *args: Any, **kwargs: Any) -> sidecar.Scrubbed:
        result = real_scrub(raw, *args, **kwargs)
        if "InstitutionName" in raw:
            result.kept["InstitutionName"] = raw["InstitutionName"]  # the bug we simulate
        return result

    monkeypatch.setattr(sidecar, "scrub", leaky)
    out = tmp_path / "out"
    assert _run(ge_study, out) == 1
    assert not (out / "sub-ge").exists()  # nothing published
    hits = _hits(out)
    assert {h["kind"] for h in hits} == {"institution"}
    assert hits[0]["rel_path"] == "sub-ge/func/sub-ge_task-unknown_bold.json"
    err = capsys.readouterr().err
    assert "leak scan found an institution identifier (from InstitutionName)" in err
    assert "NIH FMRIF" not in err  # the value itself is never printed
    assert "sub-ge FAILED" in err


def test_token_in_a_staged_nifti_header_is_caught(ge_study: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real_tables = tables.run

    def tampering(ctx: ParticipantContext) -> None:
        real_tables(ctx)
        staged = ctx.stage_path(ctx.images[0].rel_path)
        raw = gzip.decompress(staged.read_bytes())
        hdr = Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
        hdr["descrip"] = b"scan of Regression"  # a name part, inside the gzip
        write_bytes(staged, gz.compress(hdr.binaryblock + raw[348:]))

    monkeypatch.setattr(tables, "run", tampering)
    out = tmp_path / "out"
    assert _run(ge_study, out) == 1
    assert not (out / "sub-ge").exists()
    hits = _hits(out)
    assert [(h["kind"], h["where"]) for h in hits] == [("name", "NIfTI header")]
    assert hits[0]["text"] == "Regression"  # the private audit has the value


def test_clean_run_publishes(ge_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(ge_study, out) == 0
    assert (out / "sub-ge" / "func" / "sub-ge_task-unknown_bold.nii.gz").is_file()
    assert _hits(out) == []


@pytest.mark.parametrize("form", ["yymmdd", "visit_yyyymmdd"])
def test_session_named_by_its_date_is_caught(shared_data: Path, tmp_path: Path,
                                             form: str, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    """A session folder named by the study date, with a two-digit year or inside a longer
    label, fails the participant (``--relabel keep`` publishes labels as they are): at
    once, when the labels are assigned, saying how to publish it."""
    import pydicom

    first = next(p for p in sorted((shared_data / "dicom" / "ge_mr750_fmri").rglob("*"))
                 if p.is_file() and p.suffix not in (".txt", ".md", ".json"))
    date = str(pydicom.dcmread(first, stop_before_pixels=True, force=True).StudyDate)
    label = date[2:] if form == "yymmdd" else f"visit{date}"
    study = tmp_path / "study"
    copy_dicom_session(shared_data, "ge", study / "sourcedata" / "sub-ge" / f"ses-{label}")
    out = tmp_path / "out"
    assert _run(study, out) == 65
    assert not (out / "sub-ge").exists()
    err = capsys.readouterr().err
    assert f"the session label ses-{label} holds an identifier" in err, err
    assert "--relabel sequential" in err
    # with pseudonymous labels the same input is published
    assert main([str(study), str(tmp_path / "relabelled"), "participant",
                 "--deface-modalities", "none", "--relabel", "sequential"]) == 0
    assert (tmp_path / "relabelled" / "sub-001" / "ses-01").is_dir()


def _published_text(out: Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of every published file: NIfTI headers only (voxels are numbers),
    everything else whole and gunzipped."""
    found = []
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if ".nii" in p.name:
            data = data[:544]
        found.append((str(p.relative_to(out)), data))
    return found


@pytest.mark.parametrize("charset,name,planted,forms", [
    # a German name spelled out in ASCII in the description the task label comes from
    ("ISO_IR 100", "Müller^Jörg", {"SeriesDescription": "fmri task-mueller"},
     ["mueller", "muller"]),
    # UTF-8, which dcm2niix reads as Latin-1 and writes back as UTF-8 (JÃ¶rg)
    ("ISO_IR 192", "Müller^Jörg", {"SequenceName": "Jörg"},
     ["jörg", "joerg", "jorg"]),
    # a Japanese name: ideographic and phonetic parts of two or three characters
    ("ISO_IR 192", "Yamada^Tarou=山田^太郎=やまだ^たろう",
     {"SequenceName": "やまだ", "ReceiveCoilName": "山田太郎"},
     ["やまだ", "山田"]),
])
def test_names_in_other_alphabets_are_not_published(shared_data: Path, tmp_path: Path,
                                                    charset: str, name: str,
                                                    planted: dict[str, str],
                                                    forms: list[str]) -> None:
    """Real GE headers with the patient's name in a non-ASCII character set, copied into
    fields a converter keeps: whatever the run's outcome, no spelling of it is published."""
    import pydicom

    study = make_dicom_study(shared_data, tmp_path / "study", {"ge": "ge"})
    for p in sorted((study / "sourcedata" / "sub-ge").rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        for keyword, value in planted.items():
            setattr(ds, keyword, value)
        ds.save_as(p)
    out = tmp_path / "out"
    _run(study, out)
    published = _published_text(out)
    assert published  # the dataset files at least
    for form in forms:
        for cased in {form, form.lower(), form.upper(), form.capitalize()}:
            utf8 = cased.encode("utf-8")
            for needle in (utf8, utf8.decode("latin-1").encode("utf-8")):  # JÃ¶rg too
                assert not [rel for rel, data in published
                            if needle in rel.encode() or needle in data], needle
