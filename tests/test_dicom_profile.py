"""How Profile resolves Table E.1-1 codes, options, compound codes, overrides and the
attributes in no table."""

from __future__ import annotations

import itertools

import pytest

from bidsdeid.config import DeidOptions
from bidsdeid.dicom import profile as P
from bidsdeid.dicom import tables
from bidsdeid.dicom.profile import Profile, tag_of


def op(profile: Profile, keyword: str, vr: str | None = None, enhanced: bool = False) -> str:
    return profile.decide(tag_of(keyword), vr, enhanced).op


def test_basic_profile_defaults() -> None:
    p = Profile()
    assert op(p, "PatientName") == P.LABEL
    assert op(p, "PatientID") == P.LABEL
    assert op(p, "PatientBirthDate") == P.EMPTY  # Z, and no date option touches it
    assert op(p, "PatientAge") == P.REMOVE  # X unless Retain Patient Characteristics
    assert op(p, "AccessionNumber") == P.EMPTY
    assert op(p, "SOPInstanceUID") == P.UID
    assert op(p, "StudyDate") == P.SHIFT  # Modified Dates is the default
    assert op(p, "FrameAcquisitionDateTime") == P.SHIFT
    assert op(p, "SeriesDescription") == P.DESCRIPTOR  # Clean Descriptors is the default
    assert op(p, "InstitutionName") == P.REMOVE
    assert op(p, "OtherPatientIDsSequence") == P.REMOVE


def test_compound_codes_follow_the_iod_type() -> None:
    p = Profile(DeidOptions(retain_longitudinal="off", clean_descriptors=False))
    # X/Z/D: Type 3 in classic IODs, Type 1 in Enhanced General Equipment
    assert op(p, "DeviceSerialNumber") == P.REMOVE
    assert op(p, "DeviceSerialNumber", enhanced=True) == P.DUMMY
    # Z/D: Content Date is Type 2C in General Image, Type 1 with functional groups
    assert op(p, "ContentDate") == P.EMPTY
    assert op(p, "ContentDate", enhanced=True) == P.DUMMY
    # X/Z: Acquisition Context Sequence is Type 2 wherever its module is used
    assert op(p, "AcquisitionContextSequence") == P.EMPTY
    # X/Z/D on a Type 3 attribute: the first action
    assert op(p, "StationName", enhanced=True) == P.REMOVE
    assert op(p, "InstitutionName", enhanced=True) == P.REMOVE
    # X/Z/U*: references kept with keyed UIDs
    assert op(p, "ReferencedImageSequence") == P.RECURSE
    assert op(p, "SourceImageSequence") == P.RECURSE
    assert "X/Z/U* -> U" in p.decide(tag_of("SourceImageSequence"), None).audit


def test_every_compound_code_resolves_to_one_of_its_parts() -> None:
    for row in tables.e1_1():
        if "/" not in row.basic or row.tag is None:
            continue
        for enhanced in (False, True):
            chosen, _audit = P._resolve_compound(row.basic, row.tag, enhanced)
            assert chosen in row.basic.replace("*", "").split("/")


def test_options_override_the_basic_profile() -> None:
    full = Profile(DeidOptions(retain_longitudinal="full"))
    assert op(full, "StudyDate") == P.KEEP
    off = Profile(DeidOptions(retain_longitudinal="off"))
    assert op(off, "StudyDate") == P.EMPTY  # Z
    assert op(off, "SeriesDate") == P.REMOVE  # X/D, Type 3
    every = Profile(DeidOptions(retain_device_identity=True, retain_institution_identity=True,
                                retain_uids=True, retain_patient_characteristics=True))
    assert op(every, "DeviceSerialNumber") == P.KEEP
    assert op(every, "StationName") == P.KEEP
    assert op(every, "InstitutionName") == P.KEEP
    assert op(every, "SOPInstanceUID") == P.KEEP
    assert op(every, "PatientAge") == P.AGE
    assert op(every, "PatientSex") == P.KEEP
    assert op(every, "PatientWeight") == P.KEEP
    no_desc = Profile(DeidOptions(clean_descriptors=False))
    assert op(no_desc, "SeriesDescription") == P.REMOVE


def test_clean_beats_keep_when_two_options_apply() -> None:
    # Date of Last Calibration: Retain Device Identity K, Modified Dates C
    p = Profile(DeidOptions(retain_device_identity=True, retain_longitudinal="modified"))
    assert op(p, "DateOfLastCalibration") == P.SHIFT
    p = Profile(DeidOptions(retain_device_identity=True, retain_longitudinal="full"))
    assert op(p, "DateOfLastCalibration") == P.KEEP


def test_descriptor_falls_back_to_the_basic_profile() -> None:
    p = Profile()
    d = p.decide(tag_of("ImageComments"), "LT")
    assert d.op == P.DESCRIPTOR and d.fallback is not None and d.fallback.op == P.REMOVE
    d = p.decide(tag_of("AcquisitionDeviceProcessingDescription"), "LO", True)
    assert d.fallback is not None and d.fallback.op == P.REMOVE  # X/D, Type 3


def test_repeating_groups() -> None:
    p = Profile()
    assert p.decide(0x60003000, "OW").op == P.REMOVE  # Overlay Data
    assert p.decide(0x60024000, "LT").op == P.REMOVE  # Overlay Comments (group 6002)
    assert p.decide(0x60000010, "US").op == P.REMOVE  # the rest of the overlay group
    assert p.decide(0x50001000, "US").op == P.REMOVE  # curve data
    assert p.decide(0x70000010, "US").op == P.KEEP  # not a repeating group


def test_attributes_in_no_table() -> None:
    p = Profile()
    assert op(p, "Manufacturer") == P.KEEP_TEXT
    assert op(p, "SequenceName") == P.KEEP_TEXT
    assert op(p, "PositionReferenceIndicator") == P.EMPTY  # free text: emptied
    assert op(p, "EchoTime") == P.KEEP
    assert op(p, "ImageType") == P.KEEP
    assert op(p, "SOPClassUID") == P.UID  # mapped unless public (it is)
    assert op(p, "PixelData") == P.KEEP
    assert op(p, "PatientAlternativeCalendar") == P.EMPTY  # CS in the patient group
    assert op(p, "FileMetaInformationGroupLength") == P.REMOVE
    assert p.decide(0x00090000 + 0x10000, "LO").op in (P.EMPTY, P.REMOVE)
    assert p.decide(0x00191000 - 0x10000 + 0x20000, "OB").op == P.REMOVE  # unknown binary
    assert p.decide(0x00091234 + 0x10000, "PN").op == P.EMPTY  # unknown tag, PN VR


@pytest.mark.parametrize("keyword,vr", [("SecondaryCaptureDeviceManufacturerModelName", "CS"),
                                        ("SecondaryCaptureDeviceManufacturer", "FD"),
                                        ("SeriesDescription", "OB"), ("PatientComments", "US")])
def test_text_attribute_in_another_vr_is_removed(keyword: str, vr: str) -> None:
    """A text attribute written with a non-text VR would be kept by that VR's rule (code
    strings and numbers are kept): it is removed instead."""
    p = Profile()
    assert p.decide(tag_of(keyword), vr).op == P.REMOVE
    assert p.decide(tag_of(keyword), None).op != P.REMOVE or keyword == "PatientComments"


def test_private_attributes() -> None:
    p = Profile()
    assert p.decide_private("SIEMENS CSA HEADER", 0x0029, 0x10, "OB").op == P.REMOVE
    assert p.decide_private("Philips Imaging DD 001", 0x2001, 0x5F, "SQ").op == P.REMOVE
    safe = Profile(DeidOptions(retain_safe_private=True))
    assert safe.decide_private("Philips Imaging DD 001", 0x2001, 0x5F, "SQ").op == P.RECURSE
    assert safe.decide_private("Philips Imaging DD 001", 0x2001, 0x5A, None).op == P.KEEP_TEXT
    assert safe.decide_private("SIEMENS CSA HEADER", 0x0029, 0x10, "OB").op == P.REMOVE
    # matched on (creator, group, element offset): the same offset under another
    # creator is removed unless that creator lists it too
    dd1 = {(g, o) for (c, g, o) in tables.e3_10_1() if c == "Philips Imaging DD 001"}
    dd2 = {(g, o) for (c, g, o) in tables.e3_10_1() if c == "Philips Imaging DD 002"}
    group, offset = min(dd1 - dd2)
    assert safe.decide_private("Philips Imaging DD 001", group, offset, None).op != P.REMOVE
    assert safe.decide_private("Philips Imaging DD 002", group, offset, None).op == P.REMOVE
    assert safe.decide_private("Philips Imaging DD 001", group + 2, offset, None).op == P.REMOVE


def test_override_hook() -> None:
    p = Profile(overrides={tag_of("PatientName"): "K", tag_of("Manufacturer"): "X"},
                private_overrides={("ACME 1.0", 0x0019, 0x01): "K"})
    assert op(p, "PatientName") == P.KEEP
    assert op(p, "Manufacturer") == P.REMOVE
    assert p.decide_private("ACME 1.0", 0x0019, 0x01, "LO").op == P.KEEP
    assert p.decide_private("ACME 1.0", 0x0019, 0x02, "LO").op == P.REMOVE
    with pytest.raises(ValueError):
        Profile(overrides={tag_of("PatientName"): "keep"})


OPTION_SETS = [
    DeidOptions(**dict(zip(("retain_safe_private", "retain_uids", "retain_device_identity",
                            "retain_institution_identity", "retain_patient_characteristics",
                            "clean_descriptors"), flags)), retain_longitudinal=dates)
    for flags in itertools.product((False, True), repeat=6)
    for dates in ("modified", "full", "off")
    if sum(flags) in (0, 1, 6)
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "-".join(o.option_columns()))
def test_every_row_resolves_for_every_option_set(options: DeidOptions) -> None:
    p = Profile(options)
    ops = {P.KEEP, P.KEEP_TEXT, P.RECURSE, P.REMOVE, P.EMPTY, P.DUMMY, P.UID, P.SHIFT,
           P.DESCRIPTOR, P.LABEL, P.AGE}
    for row in tables.e1_1():
        tag = row.tag if row.tag is not None else (0x60003000 if row.repeating_group == 0x6000
                                                   else 0x50000010)
        if row.is_private_row or (tag >> 16) in (0x0000, 0x0002):
            continue  # command elements are removed from files; file meta is rebuilt
        for enhanced in (False, True):
            d = p.decide(tag, None, enhanced)
            assert d.op in ops, row
            # a K cell keeps, any option cell in force is honoured
            cells = {c: row.options[c] for c in options.option_columns() if c in row.options}
            if cells and set(cells.values()) == {"K"} and tag not in (P.PATIENT_NAME,
                                                                       P.PATIENT_ID):
                assert d.op in (P.KEEP, P.KEEP_TEXT, P.RECURSE, P.AGE), row
            if not cells and row.basic == "X" and tag not in (P.PATIENT_NAME, P.PATIENT_ID):
                assert d.op == P.REMOVE, row
