"""The Clean Graphics and Clean Structured Content options of PS3.15 Table E.1-1: what
they keep, what they still remove, and that they are recorded."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicom_support import KEY
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bidsdeid.config import DeidOptions
from bidsdeid.dicom.deidentify import Deidentifier
from bidsdeid.dicom.profile import Profile
from bidsdeid.dicom.writer import FileDeidentifier

NAME = "Brackenholt^Wendeline"


def _code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", "Comment"
    return item


def _image(path: Path) -> Path:
    """A small MR image with graphics (annotation, overlay, curve) and acquisition
    context, each carrying the name."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["clean-sop"])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["clean-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["clean-series"])
    ds.Modality, ds.PatientName, ds.PatientID = "MR", NAME, "PID77"
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = b"\x00\x01" * 4
    text = Dataset()
    text.UnformattedTextValue = f"{NAME} 1970"
    text.BoundingBoxAnnotationUnits = "PIXEL"
    shape = Dataset()
    shape.GraphicAnnotationUnits, shape.GraphicType = "PIXEL", "POLYLINE"
    shape.GraphicDimensions, shape.NumberOfGraphicPoints = 2, 2
    shape.GraphicData = [1.0, 2.0, 3.0, 4.0]
    layer = Dataset()
    layer.GraphicLayer = "L1"
    layer.TextObjectSequence, layer.GraphicObjectSequence = Sequence([text]), Sequence([shape])
    ds.GraphicAnnotationSequence = Sequence([layer])
    for element, vr, value in ((0x0010, "US", 2), (0x0011, "US", 2), (0x0040, "CS", "G"),
                               (0x0050, "SS", [1, 1]), (0x0100, "US", 1), (0x0102, "US", 0),
                               (0x3000, "OW", b"\x0f\x00"), (0x4000, "LT", NAME)):
        ds.add_new(0x60000000 | element, vr, value)
    ds.add_new(0x50003000, "OB", NAME.encode())
    said = Dataset()
    said.ValueType, said.TextValue = "TEXT", f"{NAME} moved"
    said.ConceptNameCodeSequence = Sequence([_code("121106")])
    coded = Dataset()
    coded.ValueType = "CODE"
    coded.ConceptNameCodeSequence = Sequence([_code("121106")])
    coded.ConceptCodeSequence = Sequence([_code("R-0038D")])
    ds.AcquisitionContextSequence = Sequence([said, coded])
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def _run(tmp_path: Path, options: DeidOptions, engine: str) -> tuple[Dataset, bytes]:
    src = _image(tmp_path / "in.dcm")
    deid = Deidentifier(Profile(options), KEY, KEY.date_offset("c1"), "c1")
    if engine == "raw":
        report = FileDeidentifier(deid, None).run(src, tmp_path / "out.dcm", "f")
        assert report.engine == "raw"
        raw = (tmp_path / "out.dcm").read_bytes()
        return pydicom.dcmread(tmp_path / "out.dcm"), raw
    ds = pydicom.dcmread(src)
    deid.dataset(ds)
    ds.save_as(tmp_path / "py.dcm", enforce_file_format=True)
    return ds, (tmp_path / "py.dcm").read_bytes()


def _codes(ds: Dataset) -> set[str]:
    return {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}


@pytest.mark.parametrize("engine", ["raw", "pydicom"])
def test_clean_graphics_keeps_the_shapes_and_nothing_that_can_draw_a_name(
        tmp_path: Path, engine: str) -> None:
    out, raw = _run(tmp_path, DeidOptions(clean_graphics=True), engine)
    assert b"Brackenholt" not in raw
    layer = out.GraphicAnnotationSequence[0]
    assert list(layer.GraphicObjectSequence[0].GraphicData) == [1.0, 2.0, 3.0, 4.0]
    assert "Brackenholt" not in str(layer.TextObjectSequence[0].get("UnformattedTextValue"))
    assert not [e for e in out if e.tag.group in (0x6000, 0x5000)]  # overlay and curve gone
    assert "113103" in _codes(out)


@pytest.mark.parametrize("engine", ["raw", "pydicom"])
def test_clean_structured_content_keeps_the_codes_and_drops_the_text(
        tmp_path: Path, engine: str) -> None:
    out, raw = _run(tmp_path, DeidOptions(clean_structured_content=True), engine)
    assert b"Brackenholt" not in raw
    said, coded = out.AcquisitionContextSequence
    assert not said.get("TextValue")
    assert said.ConceptNameCodeSequence[0].CodeValue == "121106"
    assert coded.ConceptCodeSequence[0].CodeValue == "R-0038D"
    assert "113104" in _codes(out)


@pytest.mark.parametrize("engine", ["raw", "pydicom"])
def test_without_the_options_the_basic_profile_removes_them(tmp_path: Path,
                                                           engine: str) -> None:
    out, raw = _run(tmp_path, DeidOptions(), engine)
    assert b"Brackenholt" not in raw
    assert not out.get("AcquisitionContextSequence")
    assert not [e for e in out if e.tag.group in (0x6000, 0x5000)]
    assert not _codes(out) & {"113103", "113104"}
