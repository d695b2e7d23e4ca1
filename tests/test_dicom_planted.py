"""Planted identifiers never survive: every identifying attribute, nested sequences,
per-frame functional groups and private blocks, on every shared DICOM set.

The output bytes are searched raw (not parsed values): a token, a planted or real
date, a name part or an original UID anywhere in a file fails the test.
"""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from conftest import tree_digest
from dicom_support import (
    KEY,
    Planter,
    all_uids,
    copy_set,
    dicom_inputs,
    plant_files,
    stage_dicom,
    staged_files,
    walk_items,
)

from bidsdeid.config import DeidOptions
from bidsdeid.dicom.deidentify import Deidentifier
from bidsdeid.dicom.profile import Profile
from bidsdeid.dicom.unlisted import SAFE_TEXT_KEYWORDS
from bidsdeid.dicom.writer import FileDeidentifier
from bidsdeid.privacy.identifiers import Identifiers

pytestmark = pytest.mark.needs_shared

# (set, files per series): whole sets where they are small, a slice of each series of
# the 1,236-file Philips session.
SETS = [("xa30", None), ("ge", 12), ("philips", 4), ("penn", None), ("tcia", None)]


def _real_tokens(files: list[Path]) -> list[tuple[str, re.Pattern[bytes]]]:
    """Real identifiers of the inputs (names, IDs, institution, device, dates)."""
    ids = Identifiers()
    for f in files:
        ids.add_dataset(pydicom.dcmread(f, stop_before_pixels=True))
    out = []
    for tok in ids.tokens(["name", "id", "institution", "device", "date"]):
        body = re.escape(tok.text.encode())
        if tok.text.isdigit():  # a number, not part of a longer number
            pattern = rb"(?<![0-9A-Za-z.])" + body + rb"(?![0-9A-Za-z]|\.[0-9])"
        else:
            pattern = rb"(?<![A-Za-z0-9])" + body + rb"(?![A-Za-z0-9])"
        out.append((f"{tok.kind} from {tok.source}", re.compile(pattern, re.IGNORECASE)))
    return out


def _technical_values(data: bytes) -> list[bytes]:
    """Values of the allow-listed technical attributes (model, software, coding scheme
    designators...) in a file: real identifiers may legitimately occur inside them."""
    ds = pydicom.dcmread(BytesIO(data), force=True)
    out = set()
    for item in walk_items(ds):
        for elem in item:
            if elem.keyword in SAFE_TEXT_KEYWORDS and elem.VR != "PN" and elem.value:
                values = elem.value if not isinstance(elem.value, str) else [elem.value]
                out.update(str(v).encode("latin-1") for v in values
                           if sum(c.isalpha() for c in str(v)) >= 3)
    return sorted(out, key=len, reverse=True)


def _assert_clean(data: bytes, where: str, planter: Planter, uids: set[str],
                  real: list[tuple[str, re.Pattern[bytes]]]) -> None:
    low = data.lower()
    for tok, planted_in in planter.tokens.items():
        assert tok.lower().encode() not in low, f"{where}: token planted in {planted_in}"
    for date in planter.dates:
        assert date.encode() not in data, f"{where}: planted date {date}"
    for uid in uids:
        assert uid.encode() not in data, f"{where}: original UID {uid}"
    masked = data
    for value in _technical_values(data):
        masked = masked.replace(value, b" " * len(value))
    for what, pattern in real:
        assert not pattern.search(masked), f"{where}: {what}"


@pytest.mark.parametrize("name,per_series", SETS)
def test_planted_identifiers_do_not_survive(shared_data: Path, tmp_path: Path, name: str,
                                            per_series: int | None) -> None:
    bids = tmp_path / "in"
    src = copy_set(shared_data, name, bids / "sourcedata" / "sub-p1", per_series)
    files = dicom_inputs(src)
    real = _real_tokens(files)
    planter = Planter(name)
    plant_files(files, planter)
    uids = all_uids(files) | planter.uids
    before = tree_digest(bids)
    ctx = stage_dicom(bids, tmp_path / "run", "p1", nprocs=2)
    assert tree_digest(bids) == before, "the input tree changed"
    outputs = staged_files(ctx)
    assert outputs, "nothing was written"
    assert len(planter.tokens) > 300  # every identifying attribute got a token
    for out in outputs:
        data = out.read_bytes()
        _assert_clean(data, str(out.relative_to(ctx.staging)), planter, uids, real)
        ds = pydicom.dcmread(out)
        assert ds.PatientIdentityRemoved == "YES"
        assert "PatientAge" not in ds  # X unless Retain Patient Characteristics
        assert ds.PatientBirthDate == ""
        assert ds.PatientName == "p1" and ds.PatientID == "p1"
    # the audits and mapping files hold no planted value other than the mappings' own
    for audit in (ctx.config.audit_dir / "sub-p1").rglob("*.json"):
        low = audit.read_bytes().lower()
        assert not any(t.lower().encode() in low for t in planter.tokens), audit


@pytest.mark.parametrize("name", ["penn", "xa30"])
def test_age_over_89_is_capped_when_characteristics_are_kept(shared_data: Path,
                                                             tmp_path: Path, name: str) -> None:
    bids = tmp_path / "in"
    src = copy_set(shared_data, name, bids / "sourcedata" / "sub-p1", 2)
    files = dicom_inputs(src)
    planter = Planter(name)
    plant_files(files, planter)
    ctx = stage_dicom(bids, tmp_path / "run", "p1",
                      options=DeidOptions(retain_patient_characteristics=True))
    outputs = staged_files(ctx)
    assert outputs
    for out in outputs:
        ds = pydicom.dcmread(out)
        assert ds.PatientAge == "089Y"
        assert ds.PatientBirthDate == ""  # Z in every option set: age cannot be derived
        assert all(d.encode() not in out.read_bytes() for d in planter.dates)


def test_engine_on_secondary_capture_files(shared_data: Path, tmp_path: Path) -> None:
    """The CT brain set is secondary capture (quarantined by the stage): the engine
    itself must still clean it, encapsulated JPEG pixel data included."""
    src = copy_set(shared_data, "ctbrain", tmp_path / "ct")
    files = dicom_inputs(src)
    assert files
    real = _real_tokens(files)
    planter = Planter("ct")
    plant_files(files, planter)
    uids = all_uids(files) | planter.uids
    deid = Deidentifier(Profile(), KEY, KEY.date_offset("ct"), "ct1")
    fd = FileDeidentifier(deid, None)
    for i, f in enumerate(files):
        out = tmp_path / "out" / f"{i}.dcm"
        report = fd.run(f, out, f"file {i}")
        assert report.engine == "raw"
        _assert_clean(out.read_bytes(), out.name, planter, uids, real)
        a, b = pydicom.dcmread(f), pydicom.dcmread(out)
        assert a.PixelData == b.PixelData


def test_the_check_finds_a_kept_identifier(shared_data: Path, tmp_path: Path) -> None:
    """Negative control: Retain Institution Identity keeps InstitutionName, and the
    byte search above must then find its planted token."""
    bids = tmp_path / "in"
    src = copy_set(shared_data, "penn", bids / "sourcedata" / "sub-p1", 1)
    files = dicom_inputs(src)
    planter = Planter("neg")
    plant_files(files, planter)
    ctx = stage_dicom(bids, tmp_path / "run", "p1",
                      options=DeidOptions(retain_institution_identity=True))
    out = staged_files(ctx)[0]
    assert pydicom.dcmread(out).InstitutionName in planter.tokens
    with pytest.raises(AssertionError, match="token planted in"):
        _assert_clean(out.read_bytes(), out.name, planter, set(), [])
