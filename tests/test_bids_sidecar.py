"""Sidecar allow-list, identifier check, de-identification codes, schema requirements."""

from __future__ import annotations

import io
import struct

import nibabel as nib
import numpy as np
import pytest

from bidsdeid.bids import nifti, schema, sidecar
from bidsdeid.config import DeidOptions
from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.privacy.leakscan import Matcher

DCM2NIIX_LIKE = {
    "Modality": "MR", "MagneticFieldStrength": 3, "Manufacturer": "Siemens",
    "InstitutionName": "Quuxvale Infirmary", "InstitutionAddress": "3 Hollyhock Road",
    "InstitutionalDepartmentName": "Radiology", "StationName": "STATPLANT9",
    "DeviceSerialNumber": "77102", "PatientName": "Fernwhistle^Zorbulon",
    "PatientID": "PID88X7731", "PatientBirthDate": "1931-01-01", "SeriesDescription": "t1 mpr",
    "ProtocolName": "t1 mpr", "ImageComments": "Zorbulon", "StudyDescription": "brain",
    "AcquisitionDateTime": "2022-07-11T12:05:17.0425", "AcquisitionTime": "12:05:17.042500",
    "SeriesInstanceUID": "1.2.3.4", "RepetitionTime": 2.3, "EchoTime": 0.00293,
    "InversionTime": 0.9, "FlipAngle": 9, "SliceTiming": [0, 0.5], "PhaseEncodingDirection": "j-",
    "TotalReadoutTime": 0.03, "TaskName": "rest", "ReceiveCoilName": "Head_32",
    "SoftwareVersions": "syngo MR XA30", "BidsGuess": ["anat", "_T1w"], "ScanDate": "2022-07-11",
    "TimeZero": "12:00:00", "ConversionSoftware": "dcm2niix", "Authors": ["X"],
    "PulseSequenceDetails": "%SiemensSeq%\\Fernwhistle_special", "NaNField": float("nan"),
    "SampleExtractionInstitution": "Quuxvale Biobank",
}


@pytest.fixture()
def find() -> object:
    ids = Identifiers()
    ids.add_name("Fernwhistle^Zorbulon")
    return Matcher(ids).first


def test_allow_list_keeps_acquisition_fields_and_drops_identifying_ones(find: object) -> None:
    out = sidecar.scrub(DCM2NIIX_LIKE, find)  # type: ignore[arg-type]
    for key in ("RepetitionTime", "EchoTime", "InversionTime", "FlipAngle", "SliceTiming",
                "PhaseEncodingDirection", "TotalReadoutTime", "TaskName", "MagneticFieldStrength",
                "Manufacturer", "ReceiveCoilName", "SoftwareVersions"):
        assert key in out.kept, key
    for key in ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
                "SampleExtractionInstitution", "StationName", "DeviceSerialNumber", "PatientName", "PatientID",
                "PatientBirthDate", "SeriesDescription", "ProtocolName", "ImageComments",
                "StudyDescription", "AcquisitionDateTime", "AcquisitionTime", "SeriesInstanceUID",
                "BidsGuess", "ScanDate", "TimeZero", "ConversionSoftware", "Authors"):
        assert key not in out.kept and key in out.dropped, key
    # an allowed field whose value holds a name is dropped, with a PHI-free reason
    assert "PulseSequenceDetails" not in out.kept
    assert out.dropped["PulseSequenceDetails"] == "value holds a name identifier (from )"
    assert "NaNField" not in out.kept


def test_retain_options_keep_device_and_institution() -> None:
    deid = DeidOptions(retain_device_identity=True, retain_institution_identity=True)
    out = sidecar.scrub(DCM2NIIX_LIKE, lambda _t: None, deid)
    assert out.kept["StationName"] == "STATPLANT9" and "InstitutionName" in out.kept


def test_deidentification_fields_follow_the_options() -> None:
    fields = sidecar.deid_fields(DeidOptions(), defaced=True)
    codes = [c["CodeValue"] for c in fields["DeidentificationMethodCodeSequence"]]
    assert codes == ["113100", "113102", "113105", "113107"]
    assert isinstance(fields["DeidentificationMethod"], list)
    plain = sidecar.deid_fields(DeidOptions(retain_longitudinal="off", clean_descriptors=False),
                                defaced=False)
    assert [c["CodeValue"] for c in plain["DeidentificationMethodCodeSequence"]] == ["113100"]


@pytest.mark.parametrize("datatype,suffix,sidecar_in,missing", [
    ("func", "bold", {"RepetitionTime": 2}, ["TaskName"]),
    ("fmap", "phasediff", {"EchoTime1": 0.004}, ["EchoTime2"]),
    ("perf", "asl", {"ArterialSpinLabelingType": "PCASL", "MagneticFieldStrength": 3,
                     "MRAcquisitionType": "2D", "EchoTime": 0.01, "RepetitionTimePreparation": 4,
                     "PostLabelingDelay": 1.8, "BackgroundSuppression": False,
                     "M0Type": "Included", "TotalAcquiredPairs": 3},
     ["SliceTiming", "LabelingDuration"]),  # 2D ASL needs slice timing
    ("anat", "T1w", {}, []),
])
def test_schema_required_fields(datatype: str, suffix: str, sidecar_in: dict,  # type: ignore[type-arg]
                                missing: list[str]) -> None:
    assert schema.required_fields(datatype, suffix, sidecar_in) == missing


def test_nifti_scrub_clears_text_and_extensions_and_keeps_voxels() -> None:
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(data, np.diag([2, 2, 3, 1]))
    img.header["descrip"] = b"TE=3;Time=120517.000"
    img.header["aux_file"] = b"Zorbulon"
    img.header["db_name"] = b"db"
    img.header["intent_name"] = b"intent"
    img.header["data_type"] = b"Qwelmar"  # unused ANALYZE fields: any program may fill them
    img.header["glmax"] = 19310512
    img.header.set_slope_inter(2.0, -1.0)
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"comment Zorbulon\x00\x00\x00"))
    raw = img.to_bytes()
    clean = nifti.scrub_bytes(raw)
    assert nifti.header_text(raw)["aux_file"] == "Zorbulon"
    assert set(nifti.header_text(clean).values()) == {""}
    assert b"Zorbulon" not in clean and b"Qwelmar" not in clean
    back = nib.Nifti1Image.from_bytes(clean)
    assert int(back.header["glmax"]) == 0
    assert len(back.header.extensions) == 0
    assert struct.unpack("<f", clean[108:112])[0] == 352 and clean[348:352] == b"\0" * 4
    original = nib.Nifti1Image.from_bytes(raw)
    assert np.array_equal(back.get_fdata(), original.get_fdata())
    assert np.array_equal(back.affine, original.affine)
    assert back.header.get_slope_inter() == original.header.get_slope_inter()
    with pytest.raises(nifti.NiftiError):
        nifti.scrub_bytes(b"not a nifti" * 40)
    with pytest.raises(nifti.NiftiError):
        nifti.scrub_bytes(raw[:400])  # truncated voxel data
    assert isinstance(io.BytesIO(clean).read(4), bytes)


def test_nifti2_scrub_clears_unused_text() -> None:
    img = nib.Nifti2Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    img.header["unused_str"] = b"Zorbulon1931"
    img.header["descrip"] = b"Time=120517.000"
    raw = img.to_bytes()
    assert nifti.header_text(raw)["unused_str"] == "Zorbulon1931"
    clean = nifti.scrub_bytes(raw)
    assert set(nifti.header_text(clean).values()) == {""}
    assert b"Zorbulon" not in clean and b"120517" not in clean
    back = nib.Nifti2Image.from_bytes(clean)
    assert np.array_equal(back.get_fdata(), img.get_fdata())
