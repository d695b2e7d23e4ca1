"""The leak scan finds identifiers wherever text can hide in the output, and nowhere
that holds only numbers (voxels, PNG pixel data)."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.privacy.leakscan import Matcher, scan_file, scan_tree

NAME = "Fernwhistle"


@pytest.fixture()
def ids() -> Identifiers:
    ids = Identifiers()
    ids.add_name(f"{NAME}^Zorbulon")
    ids.add("id", "PID88X7731", "PatientID")
    ids.add_date("20180918", "StudyDate")
    ids.add("uid", "1.3.12.2.1107.5.2.43.67093.2022071112080825794102791", "SOPInstanceUID")
    ids.add("institution", "Quuxvale Infirmary", "InstitutionName")
    return ids


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for ctype, body in chunks:
        out += struct.pack(">I", len(body)) + ctype + body + struct.pack(
            ">I", zlib.crc32(ctype + body))
    return out


def _kinds(hits: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(h.kind, h.where) for h in hits}


def test_matcher_boundaries_case_and_forms(ids: Identifiers) -> None:
    m = Matcher(ids)
    assert m.first("scan of fernwhistle") is not None
    assert m.first("Fernwhistlex") is None  # not a whole token
    assert m.first("2018-09-18T10:00") is not None and m.first("18/09/2018") is not None
    assert m.first("2.25.1234") is None
    assert m.first(b"QUUXVALE INFIRMARY") is not None


def test_matcher_handles_thousands_of_long_tokens() -> None:
    ids = Identifiers()
    for i in range(3000):
        ids.add("uid", f"1.3.12.2.1107.5.2.43.67093.20220711120808257941{i:05d}", "uid")
    ids.add("text", "x" * 5000, "ImageComments")  # one very long free text
    m = Matcher(ids)
    assert m.first("ref 1.3.12.2.1107.5.2.43.67093.2022071112080825794102999.") is not None
    assert m.first("1.3.12.2.1107.5.2.43.67093.20220711120808257941029999") is None


def test_nifti_header_is_scanned_inside_gzip_but_not_voxels(ids: Identifiers,
                                                            tmp_path: Path) -> None:
    data = np.frombuffer(NAME.encode() * 40, dtype=np.uint8).reshape(40, 11, 1)
    img = nib.Nifti1Image(data, np.eye(4))
    clean = tmp_path / "clean.nii.gz"
    nib.save(img, clean)
    assert scan_file(clean, "clean.nii.gz", Matcher(ids)) == []  # the name is only voxels
    img.header["descrip"] = b"scan of PID88X7731"
    dirty = tmp_path / "dirty.nii.gz"
    nib.save(img, dirty)
    assert _kinds(scan_file(dirty, "dirty.nii.gz", Matcher(ids))) == {("id", "NIfTI header")}


def test_nifti_extension_is_scanned(ids: Identifiers, tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"Quuxvale Infirmary\x00\x00"))
    p = tmp_path / "ext.nii"
    nib.save(img, p)
    assert ("institution", "NIfTI header") in _kinds(scan_file(p, "ext.nii", Matcher(ids)))


def test_dicom_header_scanned_pixel_data_not(ids: Identifiers, tmp_path: Path) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4, 11, 8, 8, 7
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (NAME.encode() * 4)
    clean = tmp_path / "clean.dcm"
    ds.save_as(clean, enforce_file_format=True)
    assert scan_file(clean, "clean.dcm", Matcher(ids)) == []
    ds.ImageComments = f"for {NAME}"
    dirty = tmp_path / "dirty.dcm"
    ds.save_as(dirty, enforce_file_format=True)
    assert _kinds(scan_file(dirty, "dirty.dcm", Matcher(ids))) == {("name", "DICOM header")}


def test_png_text_chunks_scanned_idat_not(ids: Identifiers, tmp_path: Path) -> None:
    ihdr = (b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = (b"IDAT", NAME.encode())  # not valid image data, but never read as text
    end = (b"IEND", b"")
    clean = tmp_path / "a.png"
    clean.write_bytes(_png([ihdr, idat, end]))
    assert scan_file(clean, "a.png", Matcher(ids)) == []
    ztxt = (b"zTXt", b"Comment\x00\x00" + zlib.compress(b"PID88X7731"))
    dirty = tmp_path / "b.png"
    dirty.write_bytes(_png([ihdr, ztxt, idat, end]))
    assert _kinds(scan_file(dirty, "b.png", Matcher(ids))) == {("id", "PNG zTXt chunk")}


def test_html_embedded_images_are_decoded_by_type(ids: Identifiers, tmp_path: Path) -> None:
    png = _png([(b"IHDR", b"\x00" * 13), (b"tEXt", b"Author\x00Fernwhistle"), (b"IEND", b"")])
    svg = b"<svg><text>Quuxvale Infirmary</text></svg>"
    idat_only = _png([(b"IHDR", b"\x00" * 13), (b"IDAT", NAME.encode()), (b"IEND", b"")])
    html = (b"<html><img src='data:image/png;base64," + base64.b64encode(png) + b"'>"
            b"<img src=\"data:image/svg+xml;base64," + base64.b64encode(svg) + b"\">"
            b"<img src='data:image/png;base64," + base64.b64encode(idat_only) + b"'></html>")
    p = tmp_path / "report.html"
    p.write_bytes(html)
    kinds = _kinds(scan_file(p, "report.html", Matcher(ids)))
    assert kinds == {("name", "embedded image/png (PNG tEXt chunk)"),
                     ("institution", "embedded image/svg+xml (file content)")}


def test_text_paths_and_gzip_tsv(ids: Identifiers, tmp_path: Path) -> None:
    (tmp_path / "sub-Fernwhistle").mkdir()
    (tmp_path / "sub-Fernwhistle" / "x.json").write_text('{"a": "2018-09-18T10:00:00"}')
    (tmp_path / "physio.tsv.gz").write_bytes(gzip.compress(b"1\t2\nQuuxvale Infirmary\n"))
    hits = scan_tree(tmp_path, ids)
    where = {(h.rel_path, h.kind, h.where) for h in hits}
    assert ("sub-Fernwhistle", "name", "a folder name") in where
    assert ("sub-Fernwhistle/x.json", "name", "the file path") in where
    assert ("sub-Fernwhistle/x.json", "date", "file content") in where
    assert ("physio.tsv.gz", "institution", "file content") in where
    assert all(NAME not in h.public_line() for h in hits)


@pytest.mark.parametrize("written", ["18-09-2018", "09-18-2018", "18092018", "09182018",
                                     "18.9.2018", "9/18/2018", "18 Sep 2018", "Sept 18, 2018",
                                     "18-SEP-2018", "18september2018", "September 18 2018"])
def test_dates_are_found_as_people_write_them(ids: Identifiers, written: str) -> None:
    m = Matcher(ids)
    assert m.first(f"scanned on {written}, 10:00") is not None, written
    assert m.first(f"x{written}") is None  # inside a word: not a date


def test_two_digit_year_dates_are_searched_in_paths_only(ids: Identifiers,
                                                         tmp_path: Path) -> None:
    """A session folder named by its date (YYMMDD, DDMMYY) or holding the date inside its
    label fails the scan; the same six digits inside a number in a file do not."""
    for label in ("180918", "180918pre", "visit20180918", "post18092018"):
        (tmp_path / f"ses-{label}").mkdir()
    (tmp_path / "dwi.bvec").write_text("0.180918 -0.091818 1\n")
    (tmp_path / "ses-1809181").mkdir()  # seven digits: not this date
    hits = scan_tree(tmp_path, ids)
    assert {(h.rel_path, h.kind) for h in hits} == {
        (f"ses-{label}", "date") for label in ("180918", "180918pre", "visit20180918",
                                               "post18092018")}
    assert Matcher(ids).first("sample 180918") is None  # content: two-digit years not sought
    assert scan_tree(tmp_path, ids, skip_kinds=["date"]) == []
    again = Identifiers.from_json(ids.to_json())  # the group level rescans with these
    assert again.short_dates == ids.short_dates and "091818" in again.short_dates


@pytest.mark.parametrize("written", ["Mueller", "MULLER", "Joerg", "J\u00c3\u00b6rg",
                                     "M\u00fcller".encode("latin-1")])
def test_accented_names_are_found_however_they_were_spelled(written: str | bytes) -> None:
    """ASCII spellings (accents dropped, or ü -> ue), Latin-1 bytes, and UTF-8 misread as
    Latin-1 by a converter (JÃ¶rg)."""
    ids = Identifiers()
    ids.add_name("Müller^Jörg", "PatientName")
    assert Matcher(ids).first(written) is not None, written


def test_japanese_name_parts_are_identifiers() -> None:
    """Two-character family and given names in kanji, and kana, are tokens; so are their
    ISO 2022 (JIS) bytes, as a converter copies them from a DICOM header."""
    ids = Identifiers()
    ids.add_name("Yamada^Tarou=山田^太郎=やまだ^たろう", "PatientName")
    m = Matcher(ids)
    for text in ("山田太郎", "coil やまだ", "たろう", "Yamada", "やまだ".encode("iso2022_jp")):
        assert m.first(text) is not None, text
    assert m.first("山") is None and m.first("田中") is None


def test_json_escapes_are_decoded(ids: Identifiers, tmp_path: Path) -> None:
    ids.add_name("Jörg", "PatientName")
    (tmp_path / "a.json").write_text('{"Note": "J\\u00f6rg"}')  # written with ensure_ascii
    assert [h.where for h in scan_tree(tmp_path, ids)] == ["file content (JSON escapes decoded)"]


def test_names_run_together_and_ids_without_leading_zeros() -> None:
    ids = Identifiers()
    ids.add_name("Fernwhistle^Zorbulon^Q", "PatientName")
    ids.add("id", "000887731", "PatientID")
    ids.add("id", "0042", "StudyID")  # too short without its zeros to search for
    m = Matcher(ids)
    for text in ("user fernwhistlezorbulon", "ZorbulonFernwhistle.nii", "MRN 887731",
                 "MRN 000887731"):
        assert m.first(text) is not None, text
    assert m.first("42") is None and m.first("887731x") is None


def test_skipped_kinds_are_not_searched(ids: Identifiers, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("20180918")
    assert scan_tree(tmp_path, ids, skip_kinds=["date"]) == []
    assert len(scan_tree(tmp_path, ids)) == 1


def test_html_markup_is_not_content_but_text_and_attributes_are(tmp_path: Path) -> None:
    """A session called "pre" must not match a <pre> tag; the same word as page text,
    in an attribute value or a comment is a hit; base64 image text is not matched."""
    from bidsdeid.privacy.identifiers import Identifiers
    from bidsdeid.privacy.leakscan import scan_tree

    ids = Identifiers()
    ids.add_label("pre", "original session label")
    page = tmp_path / "a.html"
    page.write_text("<html><style>pre{white-space:pre}</style><body><pre>ok</pre>"
                    '<img src="data:image/gif;base64,AA/pre/A"></body></html>')
    assert scan_tree(tmp_path, ids) == []
    for leak in ("<p>pre</p>", '<a title="pre">x</a>', "<!-- pre -->", "<script>'pre'</script>"):
        page.write_text(f"<html><body>{leak}</body></html>")
        assert scan_tree(tmp_path, ids), leak


def test_parts_of_names_and_ids_short_numbers_and_birth_dates_round_trip() -> None:
    ids = Identifiers()
    ids.add_name("Smith-Jones^Ann")
    ids.add("id", "12343@jdoe")
    ids.add("id", "SUBJ-0042-PILOT")
    ids.add("label", "1234")
    ids.add_date("19230405", "PatientBirthDate", kind="birthdate")
    names = ids.values["name"]
    assert {"Smith", "Jones", "Ann", "Smith-Jones"} <= set(names)
    assert {"12343", "jdoe"} <= set(ids.values["id"]) and ids.id_parts >= {"jdoe", "12343"}
    assert "SUBJ" not in ids.values["id"] and "PILOT" not in ids.values["id"]  # generic
    assert ids.short_numbers == {"id": {"0042": ""}, "label": {"1234": ""}}
    assert "1923-04-05" in ids.values["birthdate"] and "230405" in ids.short_birthdates
    again = Identifiers.from_json(json.loads(json.dumps(ids.to_json())))
    assert (again.values, again.id_parts, again.short_numbers, again.short_birthdates) == (
        ids.values, ids.id_parts, ids.short_numbers, ids.short_birthdates)
    merged = Identifiers()
    merged.merge(ids)
    assert merged.id_parts == ids.id_parts and merged.short_numbers == ids.short_numbers
    # inside labels: whole IDs and names yes, ID parts no; short numbers on digit edges
    assert ids.hidden_in_labels(["jonesrest"]) is not None
    assert ids.hidden_in_labels(["jdoe01"]) is None  # a part of an ID
    assert ids.hidden_in_labels(["s1234"]) is not None and ids.hidden_in_labels(["12345"]) is None
    # a birth date is sought whatever --retain-dates keeps, dates are not
    matcher = Matcher(ids, ["date"])
    assert matcher.first("born 1923-04-05") is not None
    assert next(matcher.finditer_path("sub-01/anat/sub-01_acq-dob19230405_T1w.nii.gz"))
