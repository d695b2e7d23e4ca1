"""``Identifiers.add_dataset_fast`` (used when indexing a study) collects exactly what
``add_dataset`` collects, on every real header in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bidsdeid.privacy.identifiers import Identifiers

pytestmark = [pytest.mark.needs_shared]


def _headers(shared: Path) -> list[Path]:
    files = []
    for folder in ("dicom", "deid"):
        for p in sorted((shared / folder).rglob("*")):
            if p.is_file() and p.suffix.lower() not in (".txt", ".md", ".json"):
                files.append(p)
    return files


def test_fast_collection_equals_the_reference_on_real_headers(shared_data: Path) -> None:
    checked = 0
    for path in _headers(shared_data)[::3]:  # every third file: all series, all vendors
        try:
            slow_ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - README files and the like
            continue
        fast_ds = pydicom.dcmread(path, stop_before_pixels=True)
        slow, fast = Identifiers(), Identifiers()
        slow.add_dataset(slow_ds)
        fast.add_dataset_fast(fast_ds)
        assert fast.to_json() == slow.to_json(), path.name
        checked += 1
    assert checked > 400


def test_fast_collection_reaches_private_and_nested_values() -> None:
    ds = Dataset()
    ds.PatientName = "Fernwhistle^Zorbulon"
    ds.Rows = 4
    item = Dataset()
    item.ReferringPhysicianName = "Docklebury^Hermione"
    item.InstitutionName = "Quuxvale Infirmary"
    ds.ReferencedStudySequence = Sequence([item])
    ds.private_block(0x0031, "PLANTCO 01", create=True).add_new(0x02, "PN", "Gravelsby^Nonce")
    slow, fast = Identifiers(), Identifiers()
    slow.add_dataset(ds)
    fast.add_dataset_fast(ds)
    assert fast.to_json() == slow.to_json()
    assert "Gravelsby" in fast.values["name"] and "Quuxvale Infirmary" in fast.values[
        "institution"]


def test_scanner_model_quoted_in_free_text_is_not_an_identifier_even_merged() -> None:
    """An SR report quoting the scanner model must not make the model (kept in sidecars)
    a leak, for one participant and for the group's merged identifiers."""
    from pydicom.dataset import Dataset

    from bidsdeid.privacy.identifiers import Identifiers

    ds = Dataset()
    ds.ManufacturerModelName = "MAGNETOM Prisma Fit"
    ds.TextValue = "MAGNETOM Prisma Fit"
    ds.ImageComments = "Fernwhistle visit"
    one = Identifiers()
    one.add_dataset_fast(ds)
    texts = {t.text for t in one.tokens()}
    assert "MAGNETOM Prisma Fit" not in texts and "Fernwhistle visit" in texts
    group = Identifiers()
    group.merge(Identifiers.from_json(one.to_json()))
    assert {t.text for t in group.tokens()} == texts
