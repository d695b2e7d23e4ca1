"""The byte engine and the pydicom engine agree; fallbacks, streaming and the
fail-closed self-check of the file writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_support import KEY, copy_set, dicom_inputs, walk_paths
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from bidsdeid.dicom.deidentify import Deidentifier
from bidsdeid.dicom.profile import Profile
from bidsdeid.dicom.rawengine import Range, RawEngine
from bidsdeid.dicom.selfcheck import LeakChecker
from bidsdeid.dicom.writer import FileDeidentifier
from bidsdeid.errors import LeakError

OFFSET = KEY.date_offset("e1")


def _deid(profile: Profile | None = None) -> Deidentifier:
    return Deidentifier(profile or Profile(), KEY, OFFSET, "e1")


def _flat(ds: Dataset) -> dict[Any, Any]:
    """Comparable content: (path, tag) -> (VR, value) with padding and VR UN resolved."""
    out: dict[Any, Any] = {}
    for path, item in walk_paths(ds):
        for elem in item:
            if elem.VR == "SQ":
                out[(path, elem.tag)] = ("SQ", len(elem.value))
                continue
            value = elem.value
            if isinstance(value, bytes):
                value = value.rstrip(b"\x00 ")
            elif value is not None:
                value = str(value)
            out[(path, elem.tag)] = (elem.VR, value or None)
    return out


def _synthetic(path: Path, implicit: bool = False) -> Path:
    """A small enhanced-like dataset with identifiers everywhere."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["sop"])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series"])
    ds.StudyDate, ds.StudyTime = "20200102", "235500"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-77"
    ds.PatientBirthDate = "19270101"
    ds.PatientAge = "093Y"
    ds.InstitutionName = "Fictional Hospital"
    ds.Manufacturer = "ACME"
    ds.DeviceSerialNumber = "SN-0042"
    ds.SeriesDescription = "t1 mprage"
    ds.ContentDate, ds.ContentTime = "20200102", "235510"
    frames = []
    for i in range(3):
        content = Dataset()
        content.FrameAcquisitionDateTime = f"2020010223551{i}.5"
        content.FrameComments = "frame note Doe"
        item = Dataset()
        item.FrameContentSequence = Sequence([content])
        block = item.private_block(0x0021, "SIEMENS MR SDI 02", create=True)
        block.add_new(0x01, "LO", "Jane Doe in a private tag")
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ref.ReferencedSOPInstanceUID = generate_uid(entropy_srcs=["ref"])
    ds.ReferencedImageSequence = Sequence([ref])
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 2, 2, 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x01\x00\x02\x00\x03\x00\x04\x00"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "STATION7"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("implicit", [False, True])
def test_engines_agree_on_a_synthetic_file(tmp_path: Path, implicit: bool) -> None:
    src = _synthetic(tmp_path / "in.dcm", implicit)
    raw = FileDeidentifier(_deid(), None).run(src, tmp_path / "raw.dcm", "f")
    assert raw.engine == "raw"
    ds = pydicom.dcmread(src)
    py = _deid().dataset(ds)
    out = pydicom.dcmread(tmp_path / "raw.dcm")
    assert _flat(out) == _flat(ds)
    meta_raw, meta_py = _flat(out.file_meta), _flat(ds.file_meta)
    meta_raw.pop(((), 0x00020000), None)  # group length: pydicom adds it on writing
    meta_py.pop(((), 0x00020000), None)
    assert meta_raw == meta_py
    assert sorted(raw.actions) == sorted(py.actions)
    assert raw.uid_map == py.uid_map and len(raw.uid_map) == 4
    # what the profile promises
    assert out.PatientName == "e1" and out.PatientID == "e1"
    assert "PatientAge" not in out and out.PatientBirthDate == ""
    assert "InstitutionName" not in out and "SourceApplicationEntityTitle" not in out.file_meta
    assert out.DeviceSerialNumber == "ANONYMIZED"  # X/Z/D is D in enhanced IODs
    assert out.Manufacturer == "ACME"
    original_sop = str(pydicom.dcmread(src).SOPInstanceUID)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == KEY.uid(original_sop)
    assert out.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == [
        "113100", "113107", "113105"]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    frame = out.PerFrameFunctionalGroupsSequence[0]
    assert "FrameComments" not in frame.FrameContentSequence[0]
    assert frame.FrameContentSequence[0].FrameAcquisitionDateTime.startswith("18")
    assert not any(e.tag.is_private for _p, item in walk_paths(out) for e in item)
    assert out.PixelData == pydicom.dcmread(src).PixelData


@pytest.mark.needs_shared
@pytest.mark.parametrize("name", ["xa30", "philips", "ge", "penn", "tcia", "ctbrain"])
def test_engines_agree_on_real_files(shared_data: Path, tmp_path: Path, name: str) -> None:
    src = copy_set(shared_data, name, tmp_path / "in", 2)
    files = dicom_inputs(src)
    assert files
    descriptors = {"SeriesDescription": "T1w", "ProtocolName": "T1w"}
    for i, f in enumerate(files):
        report = FileDeidentifier(_deid(), None).run(f, tmp_path / f"{i}.dcm", f.name,
                                                     descriptors)
        assert report.engine == "raw"
        ds = pydicom.dcmread(f, force=True)
        py = _deid().dataset(ds, descriptors)
        out = pydicom.dcmread(tmp_path / f"{i}.dcm")
        assert _flat(out) == _flat(ds), f.name
        assert report.uid_map == py.uid_map
        assert sorted(report.actions) == sorted(py.actions), f.name


def test_deflated_files_use_the_pydicom_engine(tmp_path: Path) -> None:
    src = _synthetic(tmp_path / "in.dcm")
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    report = FileDeidentifier(_deid(), None).run(tmp_path / "deflated.dcm",
                                                 tmp_path / "out.dcm", "f")
    assert report.engine == "pydicom"
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    FileDeidentifier(_deid(), None).run(src, tmp_path / "plain.dcm", "f")
    assert _flat(out) == _flat(pydicom.dcmread(tmp_path / "plain.dcm"))


def test_pixel_data_is_streamed_not_loaded(tmp_path: Path) -> None:
    src = _synthetic(tmp_path / "in.dcm")
    ds = pydicom.dcmread(src)
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(range(256)) * 2048  # 512 KiB
    ds.save_as(src, enforce_file_format=True)
    _meta, chunks, _report = RawEngine(_deid()).run(src.read_bytes(), {})
    ranges = [c for c in chunks if isinstance(c, Range)]
    assert len(ranges) == 1 and ranges[0].length >= 512 * 1024
    assert sum(len(c) for c in chunks if isinstance(c, bytes)) < 8192


def test_self_check_fails_closed(tmp_path: Path) -> None:
    src = _synthetic(tmp_path / "in.dcm")
    keep_name = Profile(overrides={0x00100010: "K"})  # a site rule that keeps the name
    checker = LeakChecker([("name", "Doe", "PatientName"), ("name", "Jane", "PatientName")])
    with pytest.raises(LeakError) as err:
        FileDeidentifier(_deid(keep_name), checker).run(src, tmp_path / "out.dcm", "file 1")
    assert "Doe" not in str(err.value) and "file 1" in str(err.value)
    assert not (tmp_path / "out.dcm").exists()
    assert not list(tmp_path.glob(".bidsdeid-tmp*"))
    # an original UID planted where no rule looks (an allow-listed text attribute)
    ds = pydicom.dcmread(src)
    ds.ManufacturerModelName = str(ds.StudyInstanceUID)
    ds.save_as(src, enforce_file_format=True)
    with pytest.raises(LeakError):
        FileDeidentifier(_deid(), LeakChecker([])).run(src, tmp_path / "out.dcm", "f")
    # and the same file passes when nothing is planted
    ds.ManufacturerModelName = "Prisma"
    ds.save_as(src, enforce_file_format=True)
    FileDeidentifier(_deid(), LeakChecker([("name", "Doe", "PatientName")])).run(
        src, tmp_path / "out.dcm", "f")
    assert (tmp_path / "out.dcm").is_file()
