"""``bidsdeid-demo DIR [-- BIDSDEID_OPTIONS]``: a small study with fake identifiers, run.

Works in a fresh clone with no data and no network. It writes one participant as
classic MR Image Storage DICOM (a sagittal T1w series made from the adult template
head that ships in the ``pydeface`` wheel, ``pydeface/data/mean_reg2mean.nii.gz``,
at 2 mm) with fake identifiers everywhere a scanner puts them: name, ID, a birth date
that makes the person 93, institution and address, station, serial number, operator,
a private tag with a planted token and the original SOP Instance UID in plain text
(as Siemens CSA headers carry it). Then it runs

    bidsdeid DIR/study DIR/output participant --dicom-out [BIDSDEID_OPTIONS]

through :func:`bidsdeid.cli.run.main` and prints where the results are, and the exit
code of that run as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from bidsdeid.utils.atomic import write_bytes, write_json

LABEL = "demo01"
STUDY_DATE = dt.date(2024, 3, 15)
FAKE = {
    "PatientName": "DEMOPERSON^ALICE^Q",
    "PatientID": "PID-55123",
    "PatientBirthDate": "19301002",  # 93 on the study date
    "PatientAge": "093Y",
    "PatientSex": "F",
    "PatientWeight": "61",
    "PatientAddress": "12 Fictional Lane, Nowhere",
    "InstitutionName": "Fictional General Hospital",
    "InstitutionAddress": "1 Imaginary Road, Nowhere",
    "StationName": "DEMO-STATION-7",
    "DeviceSerialNumber": "SN-DEMO-918273",
    "OperatorsName": "OPRAWSKI^BOB",
    "ReferringPhysicianName": "REFERWIN^CAROL",
    "AccessionNumber": "ACC-4711",
    "StudyID": "STUDY-9",
    "StudyDescription": "Demo brain research",
    "SeriesDescription": "t1_mprage_sag DEMOPERSON",
    "ProtocolName": "t1_mprage_sag",
}
PRIVATE_TOKEN = "DEMO-PLANTED-TOKEN-7731"


def template_head() -> nib.Nifti1Image:
    """The adult template head of the pydeface package."""
    path = resources.files("pydeface").joinpath("data", "mean_reg2mean.nii.gz")
    return nib.load(str(path))  # type: ignore[return-value]


def demo_volume(step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The template at ``step`` mm: (uint16 voxels, RAS affine)."""
    img = template_head()
    data = np.asanyarray(img.dataobj)[::step, ::step, ::step]
    data = np.clip(np.rint(data), 0, 65535).astype(np.uint16)
    affine = img.affine @ np.diag([step, step, step, 1.0])
    return data, affine


def _ds(value: float) -> str:
    """A DS value of at most 16 characters."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6g}"


def _uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=["bidsdeid-demo", *parts]))


def series_datasets(data: np.ndarray, affine: np.ndarray) -> list[Dataset]:
    """One classic MR Image per sagittal slice (slice index = the first voxel axis).

    Columns run along the second voxel axis and rows along the third, so pixel (r, c)
    of slice i is voxel (i, c, r); positions and orientation follow the affine,
    converted from RAS to the patient (LPS) system of DICOM.
    """
    lps = np.diag([-1.0, -1.0, 1.0])
    col_dir = lps @ affine[:3, 1]
    row_dir = lps @ affine[:3, 2]
    col_step, row_step = float(np.linalg.norm(col_dir)), float(np.linalg.norm(row_dir))
    slice_step = float(np.linalg.norm(affine[:3, 0]))
    orientation = [*(col_dir / col_step), *(row_dir / row_step)]
    study_uid, series_uid, frame_uid = _uid("study"), _uid("series"), _uid("frame")
    date = STUDY_DATE.strftime("%Y%m%d")
    out = []
    for i in range(data.shape[0]):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = _uid("image", str(i))
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
        ds.StudyTime, ds.SeriesTime = "101500", "102000"
        ds.AcquisitionTime = ds.ContentTime = f"1021{i % 60:02d}"
        ds.Modality = "MR"
        ds.Manufacturer = "bidsdeid demo"
        ds.ManufacturerModelName = "Template Head"
        for keyword, value in FAKE.items():
            setattr(ds, keyword, value)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 3, i + 1, 1
        ds.BodyPartExamined = "BRAIN"
        ds.ScanningSequence, ds.SequenceVariant = ["GR", "IR"], ["SK", "SP", "MP"]
        ds.ScanOptions, ds.MRAcquisitionType = "", "3D"
        ds.SequenceName = "*tfl3d1_16ns"
        ds.RepetitionTime, ds.EchoTime, ds.InversionTime = "2300", "2.98", "900"
        ds.FlipAngle, ds.EchoTrainLength, ds.MagneticFieldStrength = "9", "1", "3"
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds(slice_step)
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [_ds(v) for v in lps @ (affine @ [i, 0, 0, 1])[:3]]
        ds.ImageOrientationPatient = [_ds(v) for v in orientation]
        ds.PixelSpacing = [_ds(row_step), _ds(col_step)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = data.shape[2], data.shape[1]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(data[i].T).astype("<u2").tobytes()
        block = ds.private_block(0x0029, "BIDSDEID DEMO PRIVATE", create=True)
        block.add_new(0x10, "LO", PRIVATE_TOKEN)
        block.add_new(0x11, "OB", _padded(f"CSA-like {ds.SOPInstanceUID} {FAKE['StationName']}"))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.SourceApplicationEntityTitle = "DEMOSTATION7"
        ds.file_meta = meta
        out.append(ds)
    return out


def _padded(text: str) -> bytes:
    raw = text.encode("ascii")
    return raw + b" " * (len(raw) % 2)


def synthesize(root: Path) -> Path:
    """Write the demo study under ``root``; return BIDS_DIR (``root/study``)."""
    from io import BytesIO

    study = root / "study"
    data, affine = demo_volume()
    folder = study / "sourcedata" / f"sub-{LABEL}" / "DEMO_SCAN_0003"
    for i, ds in enumerate(series_datasets(data, affine), 1):
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        write_bytes(folder / f"IM{i:04d}", buf.getvalue())  # no extension, like scanners
    write_json(study / "dataset_description.json",
               {"Name": "bidsdeid demo (fake identifiers)", "BIDSVersion": "1.10.0"})
    return study


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bidsdeid-demo",
        description="Write a small DICOM study with fake identifiers to DIR/study and run "
                    "bidsdeid on it (DIR/output, private data in DIR/output_private). "
                    "Options after -- go to bidsdeid (e.g. -- --nprocs 2).")
    ap.add_argument("dir", type=Path, metavar="DIR")
    ap.add_argument("--synth-only", action="store_true",
                    help="write the study and stop (do not run bidsdeid)")
    args, extra = ap.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    root = args.dir.expanduser().absolute()
    study = synthesize(root)
    print(f"bidsdeid-demo: study with fake identifiers written to {study}")
    if args.synth_only:
        return 0
    from bidsdeid.cli import run

    output = root / "output"
    command = [str(study), str(output), "participant", "--dicom-out", *extra]
    print("bidsdeid-demo: running bidsdeid " + " ".join(command))
    code = run.main(command)
    print(f"bidsdeid-demo: bidsdeid exited with code {code}"
          + (" (success)" if code == 0 else " (see the messages above)"))
    print(f"bidsdeid-demo: shareable output: {output}")
    print(f"bidsdeid-demo: private data (key, mappings, audit, reports): "
          f"{output.with_name(output.name + '_private')}")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
