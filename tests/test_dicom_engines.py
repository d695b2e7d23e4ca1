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


def _jpeg(comment: bytes | None = None, exif: bool = False) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray((np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64), "L")
    kwargs: dict[str, Any] = {"comment": comment} if comment else {}
    if exif:
        data = Image.Exif()
        data[0x010E] = "Doe^Jane 19270101"  # ImageDescription
        kwargs["exif"] = data.tobytes()
    img.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _j2k_with_comment() -> bytes:
    """A JPEG 2000 main header with a COM segment (SOC, SIZ stub, COM, SOT..., EOC)."""
    siz = b"\xff\x51" + (41).to_bytes(2, "big") + bytes(39)
    com = b"Doe^Jane"
    com_seg = b"\xff\x64" + (4 + len(com)).to_bytes(2, "big") + b"\x00\x01" + com
    return b"\xff\x4f" + siz + com_seg + b"\xff\x90\x00\x0a" + bytes(8) + b"\xff\xd9"


@pytest.mark.parametrize("frames,why", [
    ([_jpeg()], None),
    ([_jpeg(), _jpeg()], None),
    ([_jpeg(b"Patient: Doe^Jane DOB 19270101")], "JPEG comment"),
    ([_jpeg(exif=True)], "application segment (APP1)"),
    ([_jpeg(), b"Doe^Jane 19270101"], "after the end of a compressed frame"),
    ([_j2k_with_comment()], "JPEG 2000 comment"),
])
def test_text_beside_compressed_pixels_is_refused(tmp_path: Path, frames: list[bytes],
                                                  why: str | None) -> None:
    """What a PACS writes into JPEG frames (a comment, Exif) or next to them (a trailing
    fragment) would be copied unread with the pixels: both engines refuse the file;
    plain frames pass and are copied as they are."""
    from pydicom.encaps import itemize_frame
    from pydicom.uid import JPEGBaseline8Bit

    from bidsdeid.dicom.pixelcheck import encapsulated_text
    from bidsdeid.errors import DataError

    ds = pydicom.dcmread(_synthetic(tmp_path / "in.dcm"))
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PerFrameFunctionalGroupsSequence = Sequence(ds.PerFrameFunctionalGroupsSequence[:1])
    items = b"".join(b"".join(itemize_frame(f, 1)) for f in frames)  # each frame an item
    ds.PixelData = (b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + items  # empty offset table
                    + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = len(frames) if why is None else 1  # the stray one is no frame
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    src = tmp_path / "jpeg.dcm"
    ds.save_as(src, enforce_file_format=True)
    found = encapsulated_text(pydicom.dcmread(src).PixelData)
    if why is None:
        assert found is None
        report = FileDeidentifier(_deid(), None).run(src, tmp_path / "out.dcm", "f")
        assert report.engine == "raw"
        assert pydicom.dcmread(tmp_path / "out.dcm").PixelData == pydicom.dcmread(src).PixelData
        return
    assert found is not None and why in found
    with pytest.raises(DataError, match="not written"):
        FileDeidentifier(_deid(), None).run(src, tmp_path / "out.dcm", "f")
    assert not (tmp_path / "out.dcm").exists()


@pytest.mark.needs_shared
@pytest.mark.parametrize("comment", [None, b"Patient: Regression, Test  DOB 19310512"])
def test_real_image_compressed_with_a_comment_is_refused(shared_data: Path, tmp_path: Path,
                                                         comment: bytes | None) -> None:
    """A real GE slice re-encoded as JPEG Baseline the way a PACS compressor does it,
    with the patient's name and birth date in a JPEG comment: refused, never written;
    the same slice without the comment is written with its pixels as they were."""
    import io

    import numpy as np
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from bidsdeid.errors import DataError

    src = dicom_inputs(copy_set(shared_data, "ge", tmp_path / "in", 1))[0]
    ds = pydicom.dcmread(src)
    pixels = ds.pixel_array.astype(np.float64)
    grey = np.clip(pixels / max(pixels.max(), 1) * 255, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, "JPEG", quality=95,
                                    **({"comment": comment} if comment else {}))
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    jpeg = tmp_path / "jpeg.dcm"
    ds.save_as(jpeg, enforce_file_format=True)
    out = tmp_path / "out.dcm"
    if comment is None:
        FileDeidentifier(_deid(), None).run(jpeg, out, "f")
        assert pydicom.dcmread(out).PixelData == pydicom.dcmread(jpeg).PixelData
        return
    assert comment in jpeg.read_bytes()
    with pytest.raises(DataError, match="JPEG comment"):
        FileDeidentifier(_deid(), None).run(jpeg, out, "f")
    assert not out.exists()
