"""The bad-input corpus: every case is built on demand from copies of ../shared/data.

Nothing here is a committed binary: each :class:`Case` has a ``build`` function that
copies real files into a temporary BIDS_DIR and damages the copies (truncates a slice,
drops one, flips an orientation, plants a path in a header, ...), and an
:class:`Expect` that says what a careful user must get back: the exit code (DESIGN.md
section 1), the one-line messages that name the file, series or participant, what is
still published, and what must not be. ``tests/test_reliability_corpus.py`` runs each
case through the CLI; ``tests/CORPUS.md`` is the same table in prose (kept in step by
a test: ``BIDSDEID_WRITE_CORPUS=1`` rewrites it).

Most cases put a good participant (``sub-good``: the GE fMRI session) beside the bad
one (``sub-bad``), so "the others carry on" is tested each time. Cases that break one
series of ``sub-bad`` give it a second, good series (the XA30 T1w, its patient
attributes set to the GE patient's so the folder holds one patient).

Exit codes, as the corpus pins them:

* 0  - every participant complete; files that are plainly not DICOM (a text note, a
  picture, DICOMDIR, system files) are named on the terminal and skipped;
* 65 - bad input: a file that claims to be DICOM (a ``.dcm``/``.ima`` name or the
  ``DICM`` magic) but cannot be used, an unreadable file, a link not followed, a series
  left out because its geometry is broken, a damaged BIDS image or sidecar, a
  participant with nothing usable or holding two patients. Everything else is
  still processed and published;
* 64 - the command line is wrong (OUTPUT_DIR inside BIDS_DIR);
* 73 - the output cannot be written (disk full, file size limit).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

GE = "dicom/ge_mr750_fmri"
XA30_T1 = "dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl"
PHILIPS = "dicom/philips_elition_r571"
NIFTI_T1 = "nifti/niivue_register/T1_head_ext2.nii.gz"
NIFTI_T2 = "nifti/niivue_register/T2w.nii.gz"
INFANT_T2 = "templates/infant_dcan/INFANT_MNI_T2_2mm.nii.gz"

GOOD_FILES = ["sub-good/func/sub-good_task-unknown_bold.nii.gz"]
"""What ``sub-good`` (the GE session) publishes: its presence shows the run went on."""

T1_OF_BAD = "sub-bad/anat/sub-bad_acq-tfl_T1w.nii.gz"
BOLD_OF_BAD = "sub-bad/func/sub-bad_task-unknown_bold.nii.gz"


@dataclass
class Built:
    """A case made on disk: what to run the CLI on."""

    bids_dir: Path
    output_dir: Path
    args: list[str] = field(default_factory=list)  # extra CLI arguments
    prefix: list[str] = field(default_factory=list)  # command wrapper (setpriv, unshare...)
    listing: Path | None = None  # where a wrapper left a listing of OUTPUT_DIR


@dataclass
class Expect:
    """What the user must get back (see the module docstring for the codes)."""

    exit_code: int
    messages: list[str] = field(default_factory=list)  # substrings of stderr (one per line)
    published: list[str] = field(default_factory=list)  # OUTPUT_DIR files that must exist
    absent: list[str] = field(default_factory=list)  # globs under OUTPUT_DIR that must not
    failed: list[str] = field(default_factory=list)  # participants named FAILED


@dataclass
class Case:
    name: str
    kind: str  # the input kind, for the table
    outcome: str  # the outcome, in words, for the table
    build: Callable[[Path, Path], Built]
    expect: Expect
    deface: bool = False  # run with defacing on (--sloppy); else --deface-modalities none
    needs_root: bool = False  # needs root (mount namespace)


# -- building blocks -------------------------------------------------------------------
def _copy(shared: Path, rel: str, dest: Path) -> Path:
    src = shared / rel
    if src.is_dir():
        shutil.copytree(src, dest)
        for p in dest.rglob("*"):  # the shared files are read-only: copies are ours
            p.chmod(0o755 if p.is_dir() else 0o644)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    dest.chmod(0o755 if dest.is_dir() else 0o644)
    return dest


def _study(root: Path) -> Path:
    bids = root / "in"
    (bids / "sourcedata").mkdir(parents=True)
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "corpus", "BIDSVersion": "1.9.0"}) + "\n")
    return bids


def _good(shared: Path, bids: Path) -> None:
    _copy(shared, GE, bids / "sourcedata" / "sub-good")


def _ge_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def _edit(path: Path, edit: Callable[[Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)


def _same_patient(ref: Dataset) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                   "PatientAge"):
            if kw in ref:
                setattr(ds, kw, ref.get(kw))
            elif kw in ds:
                delattr(ds, kw)
    return edit


def _bad_with_t1(shared: Path, bids: Path) -> Path:
    """``sub-bad``: the GE session plus the XA30 T1w, made one patient."""
    folder = _copy(shared, GE, bids / "sourcedata" / "sub-bad")
    ref = pydicom.dcmread(_ge_files(folder)[0], stop_before_pixels=True)
    t1 = _copy(shared, XA30_T1, folder / "t1")
    for p in t1.iterdir():
        _edit(p, _same_patient(ref))
    return folder


def _base(shared: Path, root: Path, *, with_t1: bool = False,
          good: bool = True) -> tuple[Path, Path]:
    bids = _study(root)
    if good:
        _good(shared, bids)
    folder = (_bad_with_t1(shared, bids) if with_t1
              else _copy(shared, GE, bids / "sourcedata" / "sub-bad"))
    return bids, folder


def _built(root: Path, bids: Path, **kw: object) -> Built:
    return Built(bids, root / "out", **kw)  # type: ignore[arg-type]


def _bids_anat(bids: Path, label: str, name: str, img: nib.Nifti1Image | Path,
               sidecar: str | None = None) -> Path:
    anat = bids / f"sub-{label}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    path = anat / f"sub-{label}_{name}.nii.gz"
    if isinstance(img, Path):
        shutil.copyfile(img, path)
    else:
        nib.save(img, str(path))
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(sidecar)
    return path


def _load(shared: Path, rel: str) -> nib.Nifti1Image:
    img = nib.load(str(shared / rel))
    assert isinstance(img, nib.Nifti1Image)
    return img


# -- the cases -------------------------------------------------------------------------
def truncated(shared: Path, root: Path) -> Built:
    """Two truncated files: one inside the GE series (cut in its pixel data), one cut
    inside its header (the XA30 T1w file copied under another name)."""
    bids, folder = _base(shared, root, with_t1=True)
    last = _ge_files(folder)[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) * 6 // 10])
    t1 = next((folder / "t1").iterdir())
    (folder / "cut_header.dcm").write_bytes(t1.read_bytes()[:3000])
    return _built(root, bids)


def zero_byte(shared: Path, root: Path) -> Built:
    bids, folder = _base(shared, root)
    (folder / "IM_0151.dcm").write_bytes(b"")
    return _built(root, bids)


def random_bytes(shared: Path, root: Path) -> Built:
    bids, folder = _base(shared, root)
    (folder / "noise.dcm").write_bytes(random.Random(7).randbytes(5000))
    return _built(root, bids)


def text_and_jpeg(shared: Path, root: Path) -> Built:
    from PIL import Image

    bids, folder = _base(shared, root)
    (folder / "notes.txt").write_text("scanned on the second floor; see the log book\n")
    pixels = pydicom.dcmread(_ge_files(folder)[7]).pixel_array.astype(np.float64)
    img = (255 * pixels / max(float(pixels.max()), 1.0)).astype(np.uint8)
    Image.fromarray(img).save(folder / "screenshot.jpg", format="JPEG")
    return _built(root, bids)


def dicomdir(shared: Path, root: Path) -> Built:
    from pydicom.fileset import FileSet

    bids, folder = _base(shared, root)
    fs = FileSet()
    for p in _ge_files(folder)[:3]:
        fs.add(pydicom.dcmread(p))
    made = root / "fileset"
    fs.write(made)
    shutil.copyfile(made / "DICOMDIR", folder / "DICOMDIR")
    shutil.copyfile(made / "DICOMDIR", folder / "index.dcm")  # a DICOMDIR by content
    return _built(root, bids)


def no_pixel_data(shared: Path, root: Path) -> Built:
    """One slice of the GE series lost its pixel data (an MR image object without it)."""
    bids, folder = _base(shared, root, with_t1=True)

    def strip(ds: Dataset) -> None:
        del ds.PixelData

    _edit(_ge_files(folder)[40], strip)
    return _built(root, bids)


def missing_slice(shared: Path, root: Path) -> Built:
    """The Philips 3D T1w (170 sagittal slices) without its slice 85: a gap of 2 mm in
    a 1 mm stack; the Philips field map series beside it is whole."""
    bids = _study(root)
    _good(shared, bids)
    folder = bids / "sourcedata" / "sub-bad"
    folder.mkdir()
    for p in sorted((shared / PHILIPS).iterdir()):
        if p.name.startswith(("1301_", "2001_")) and p.name != "1301_0085.dcm":
            shutil.copyfile(p, folder / p.name)
    return _built(root, bids)


def mixed_orientation(shared: Path, root: Path) -> Built:
    """The last volume of the GE series (15 slices) turned coronal."""
    bids, folder = _base(shared, root, with_t1=True)

    def coronal(ds: Dataset) -> None:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]

    for p in _ge_files(folder)[-15:]:
        _edit(p, coronal)
    return _built(root, bids)


def two_patients(shared: Path, root: Path) -> Built:
    bids, folder = _base(shared, root)
    _copy(shared, XA30_T1, folder / "t1")  # another person's T1w in the same folder
    return _built(root, bids)


def only_localizers(shared: Path, root: Path) -> Built:
    """``sub-bad`` holds one series: the first GE volume relabelled a 3-plane localizer."""
    bids = _study(root)
    _good(shared, bids)
    folder = bids / "sourcedata" / "sub-bad"
    folder.mkdir()
    series_uid = generate_uid(entropy_srcs=["corpus-localizer"])

    def localizer(ds: Dataset) -> None:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.SeriesDescription = "3-plane loc"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1

    for p in _ge_files(shared / GE)[:15]:
        shutil.copyfile(p, folder / p.name)
        _edit(folder / p.name, localizer)
    return _built(root, bids)


def t2_without_t1(shared: Path, root: Path) -> Built:
    """A T2w head and no T1w. The tests' TemplateFlow stand-ins hold no adult T2w
    template, so a T2w template is given with ``--template`` (the infant one of
    ../shared: registration copes, the gates judge)."""
    bids = _study(root)
    _bids_anat(bids, "bad", "T2w", shared / NIFTI_T2)
    return _built(root, bids, args=["--template", str(shared / INFANT_T2)])


def odd_description(shared: Path, root: Path) -> Built:
    bids, folder = _base(shared, root, good=False)
    text = "Résumé fMRI ØÅ \u4e2d\u6587 rest \x01\x07\x1b[31m"

    def edit(ds: Dataset) -> None:
        ds.PatientID = "ODD1"  # not the GE patient of sub-good
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SeriesDescription = text
        ds.ProtocolName = "line1\nline2\ttab\x00"

    for p in _ge_files(folder):
        _edit(p, edit)
    return _built(root, bids, args=["--dicom-out"])


def path_in_header(shared: Path, root: Path) -> Built:
    bids, folder = _base(shared, root, good=False)

    def edit(ds: Dataset) -> None:
        ds.PatientID = "../../etc/passwd"
        ds.PatientName = "../../x/y"
        ds.SeriesDescription = "../../task-a/../b_acq-../x /tmp"
        ds.ProtocolName = "/etc/shadow"
        ds.StudyID = "..\\..\\windows"

    for p in _ge_files(folder):
        _edit(p, edit)
    return _built(root, bids, args=["--dicom-out"])


def symlink_loop(shared: Path, root: Path) -> Built:
    bids, folder = _base(shared, root)
    (folder / "loop").symlink_to(".")  # a folder that contains itself
    (folder / "a.dcm").symlink_to("b.dcm")
    (folder / "b.dcm").symlink_to("a.dcm")
    return _built(root, bids)


def unreadable(shared: Path, root: Path) -> Built:
    """One GE slice with mode 000. Root reads anything, so as root the CLI runs without
    CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (``setpriv --bounding-set``): the file mode is
    then enforced for root as for anyone."""
    bids, folder = _base(shared, root, with_t1=True)
    _ge_files(folder)[20].chmod(0)
    prefix = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
              if os.geteuid() == 0 else [])
    return _built(root, bids, prefix=prefix)


def fifo(shared: Path, root: Path) -> Built:
    """A named pipe called like a slice: opening it would block forever."""
    bids, folder = _base(shared, root)
    os.mkfifo(folder / "IM_0999.dcm")
    return _built(root, bids)


def nifti_not_gzip(shared: Path, root: Path) -> Built:
    bids = _study(root)
    _good(shared, bids)
    _bids_anat(bids, "bad", "T1w", shared / NIFTI_T1)
    anat = bids / "sub-bad" / "anat"
    (anat / "sub-bad_T2w.nii.gz").write_bytes(b"this is not gzip, nor NIfTI\n" * 40)
    cut = (shared / NIFTI_T1).read_bytes()
    (anat / "sub-bad_FLAIR.nii.gz").write_bytes(cut[: len(cut) // 2])  # a cut gzip stream
    return _built(root, bids)


def nifti_nans(shared: Path, root: Path) -> Built:
    bids = _study(root)
    img = _load(shared, NIFTI_T1)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[:, :, data.shape[2] // 2] = np.nan  # one axial plane of NaN
    data[0, 0, 0] = np.inf
    _bids_anat(bids, "bad", "T1w", nib.Nifti1Image(data, img.affine, img.header))
    return _built(root, bids)


def nifti_2d(shared: Path, root: Path) -> Built:
    """``sub-bad``: its GE fMRI series (DICOM) and one axial slice of a head saved as a
    2D image named T1w (BIDS)."""
    bids, _folder = _base(shared, root)
    img = _load(shared, NIFTI_T1)
    data = np.asanyarray(img.dataobj)
    flat = data[:, :, data.shape[2] // 2]
    _bids_anat(bids, "bad", "T1w", nib.Nifti1Image(flat, img.affine))
    return _built(root, bids)


def nifti_4d(shared: Path, root: Path) -> Built:
    bids = _study(root)
    img = _load(shared, NIFTI_T1)
    data = np.asanyarray(img.dataobj)
    _bids_anat(bids, "bad", "T1w", nib.Nifti1Image(np.stack([data, data], axis=-1),
                                                   img.affine, img.header))
    return _built(root, bids)


def bad_sidecar(shared: Path, root: Path) -> Built:
    bids = _study(root)
    _good(shared, bids)
    _bids_anat(bids, "bad", "T1w", shared / NIFTI_T1,
               sidecar='{"RepetitionTime": 2.3, "InstitutionName": "Hospital of X",')
    return _built(root, bids)


def output_inside_input(shared: Path, root: Path) -> Built:
    bids = _study(root)
    _good(shared, bids)
    return Built(bids, bids / "derivatives" / "deid")


def bad_folder_names(shared: Path, root: Path) -> Built:
    bids = _study(root)
    _good(shared, bids)
    _copy(shared, GE, bids / "sourcedata" / "sub-a_b")
    (bids / "sub-x..y" / "anat").mkdir(parents=True)
    return _built(root, bids)


def disk_full(shared: Path, root: Path) -> Built:
    """OUTPUT_DIR on a 192 KiB tmpfs in a private mount namespace (root only): the
    participant's images fit in the private work dir but not in OUTPUT_DIR."""
    bids = _study(root)
    _good(shared, bids)
    out = root / "out"
    out.mkdir()
    listing = root / "listing.txt"
    script = ('mount -t tmpfs -o size=192k tmpfs "$0" || exit 99; "$@"; rc=$?; '
              f'find "$0" -printf "%P %s\\n" > "{listing}"; exit $rc')
    return Built(bids, out, prefix=["unshare", "-m", "sh", "-c", script, str(out)],
                 listing=listing)


def file_size_limit(shared: Path, root: Path) -> Built:
    """``ulimit -f`` (``prlimit --fsize``) of 1 MiB: writing the staged T1w (about 2 MiB)
    raises ``OSError: [Errno 27] File too large`` in Python."""
    bids = _study(root)
    _bids_anat(bids, "bad", "T1w", shared / NIFTI_T2)
    return _built(root, bids, prefix=["prlimit", f"--fsize={1 << 20}"])


SLICE_150 = "sourcedata/sub-bad/axial_epi_fmri_interleaved_i_to_s-00150.dcm"
SLICE_41 = "sourcedata/sub-bad/axial_epi_fmri_interleaved_i_to_s-00041.dcm"
SLICE_21 = "sourcedata/sub-bad/axial_epi_fmri_interleaved_i_to_s-00021.dcm"
MISSING = "slices are missing"

CASES: list[Case] = [
    Case("truncated", "truncated DICOM: a slice cut short, and a file cut inside its header",
         "each file named as truncated; the fMRI series that lost a slice is left out "
         "(slices missing); the T1w beside it and sub-good are published",
         truncated,
         Expect(65, [f"{SLICE_150}: skipped: truncated",
                     "sourcedata/sub-bad/cut_header.dcm: skipped: not a readable DICOM file",
                     f"series 4: left out: 1 of 15 slice positions have fewer images than "
                     f"the others (9 instead of 10): {MISSING}"],
                GOOD_FILES + [T1_OF_BAD], [BOLD_OF_BAD])),
    Case("zero_byte", "zero-byte file named .dcm",
         "named (empty file) and skipped; everything else published", zero_byte,
         Expect(65, ["sourcedata/sub-bad/IM_0151.dcm: skipped: empty file (0 bytes)"],
                GOOD_FILES + [BOLD_OF_BAD])),
    Case("random_bytes", "random bytes named .dcm",
         "named (not a DICOM file) and skipped; everything else published", random_bytes,
         Expect(65, ["sourcedata/sub-bad/noise.dcm: skipped: not a DICOM file"],
                GOOD_FILES + [BOLD_OF_BAD])),
    Case("text_and_jpeg", "a text file and a JPEG in sourcedata",
         "each named (not a DICOM file) and skipped as harmless; everything published",
         text_and_jpeg,
         Expect(0, ["sourcedata/sub-bad/notes.txt: skipped: not a DICOM file",
                    "sourcedata/sub-bad/screenshot.jpg: skipped: not a DICOM file"],
                GOOD_FILES + [BOLD_OF_BAD])),
    Case("dicomdir", "DICOMDIR (by name, and by content under another name)",
         "each named (DICOMDIR, ignored); everything published", dicomdir,
         Expect(0, ["sourcedata/sub-bad/DICOMDIR: skipped: DICOMDIR",
                    "sourcedata/sub-bad/index.dcm: skipped: DICOMDIR (ignored)"],
                GOOD_FILES + [BOLD_OF_BAD])),
    Case("no_pixel_data", "DICOM without PixelData (one slice of a series)",
         "the file named (image without pixel data); its series left out (slices "
         "missing); the T1w beside it and sub-good published", no_pixel_data,
         Expect(65, [f"{SLICE_41}: skipped: image without pixel data",
                     f"series 4: left out: 1 of 15 slice positions have fewer images than "
                     f"the others (9 instead of 10): {MISSING}"],
                GOOD_FILES + [T1_OF_BAD], [BOLD_OF_BAD])),
    Case("missing_slice", "a series with a missing slice (3D T1w without its slice 85)",
         "the series left out, not converted into a wrong image (a 2.00 mm step among "
         "1.00 mm steps); the field maps beside it and sub-good published", missing_slice,
         Expect(65, ["series 1301: left out: its slice positions are not evenly spaced "
                     "(a step of 2.00 mm where the others are 1.00 mm)"],
                GOOD_FILES + ["sub-bad/fmap/sub-bad_magnitude1.nii.gz",
                              "sub-bad/fmap/sub-bad_phase2.nii.gz"], ["sub-bad/anat"])),
    Case("mixed_orientation", "a series whose slices mix two orientations",
         "the series left out (2 different orientations); the T1w beside it and sub-good "
         "published", mixed_orientation,
         Expect(65, ["series 4: left out: its slices have 2 different orientations"],
                GOOD_FILES + [T1_OF_BAD], [BOLD_OF_BAD])),
    Case("two_patients", "two patients in one participant folder",
         "the participant fails, named with its folder (no patient value printed); "
         "sub-good published", two_patients,
         Expect(65, ["sourcedata/sub-bad holds DICOM of 2 different patients"], GOOD_FILES,
                ["sub-bad"], ["bad"])),
    Case("only_localizers", "a participant with only localizers",
         "the participant fails: nothing to publish; sub-good published", only_localizers,
         Expect(65, ["sub-bad: nothing to publish"], GOOD_FILES, ["sub-bad"], ["bad"])),
    Case("t2_without_t1", "a participant with no T1w but a T2w",
         "the T2w is the defacing anchor (T2w template); defaced and published with its "
         "mask", t2_without_t1,
         Expect(0, [], ["sub-bad/anat/sub-bad_T2w.nii.gz",
                        "derivatives/bidsdeid/sub-bad/anat/"
                        "sub-bad_space-T2w_desc-deface_mask.nii.gz"]), deface=True),
    Case("odd_description", "non-ASCII, escape and control characters in "
         "SeriesDescription/ProtocolName (with --dicom-out)",
         "converted (task-rest from the description); nothing of the text on the "
         "terminal; sidecars are valid JSON", odd_description,
         Expect(0, [], ["sub-bad/func/sub-bad_task-rest_bold.nii.gz",
                        "sourcedata/sub-bad/4/1.dcm"])),
    Case("path_in_header", "PatientID ../../etc/passwd, descriptions with / and .. "
         "(with --dicom-out)",
         "no header value becomes a path: every output path is a BIDS name or a series "
         "number; nothing written outside OUTPUT_DIR", path_in_header,
         Expect(0, [], ["sub-bad/func/sub-bad_task-a_bold.nii.gz",
                        "sourcedata/sub-bad/4/1.dcm"])),
    Case("symlink_loop", "a symlink loop in sourcedata (a folder linking to itself, two "
         "files linking to each other)",
         "each link named and not followed; everything else published", symlink_loop,
         Expect(65, ["sourcedata/sub-bad/loop: skipped: symbolic link to a folder",
                     "sourcedata/sub-bad/a.dcm: skipped: broken symbolic link",
                     "sourcedata/sub-bad/b.dcm: skipped: broken symbolic link"],
                GOOD_FILES + [BOLD_OF_BAD])),
    Case("unreadable", "an unreadable slice (mode 000; as root the CLI runs without "
         "CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH)",
         "the file named (permission denied); its series left out (slices missing); the "
         "T1w beside it and sub-good published", unreadable,
         Expect(65, [f"{SLICE_21}: skipped: cannot read (permission denied)",
                     f"series 4: left out: 1 of 15 slice positions have fewer images than "
                     f"the others (9 instead of 10): {MISSING}"],
                GOOD_FILES + [T1_OF_BAD], [BOLD_OF_BAD])),
    Case("fifo", "a named pipe (FIFO) called like a slice",
         "named (not a regular file), never opened; everything else published", fifo,
         Expect(65, ["sourcedata/sub-bad/IM_0999.dcm: skipped: not a regular file"],
                GOOD_FILES + [BOLD_OF_BAD])),
    Case("nifti_not_gzip", "a .nii.gz that is not gzip, and one whose gzip stream is cut",
         "each image named and left out; the T1w beside them and sub-good published",
         nifti_not_gzip,
         Expect(65, ["sub-bad/anat/sub-bad_T2w.nii.gz: left out: not a usable NIfTI image",
                     "sub-bad/anat/sub-bad_FLAIR.nii.gz: left out: not a usable NIfTI "
                     "image (damaged gzip data)"],
                GOOD_FILES + ["sub-bad/anat/sub-bad_T1w.nii.gz"],
                ["sub-bad/anat/sub-bad_T2w*", "sub-bad/anat/sub-bad_FLAIR*"])),
    Case("nifti_nans", "a T1w NIfTI with a plane of NaN (and an Inf)",
         "defaced and published; the NaN and Inf voxels outside the face are kept as they "
         "were", nifti_nans,
         Expect(0, [], ["sub-bad/anat/sub-bad_T1w.nii.gz"]), deface=True),
    Case("nifti_2d", "a 2D NIfTI labelled T1w",
         "named and left out (a 2D image cannot be defaced); the participant's fMRI and "
         "sub-good published", nifti_2d,
         Expect(65, ["sub-bad/anat/sub-bad_T1w.nii.gz: left out: a 2D image"],
                GOOD_FILES + [BOLD_OF_BAD], ["sub-bad/anat"]), deface=True),
    Case("nifti_4d", "a 4D T1w (two volumes)",
         "both volumes defaced with the same mask and published", nifti_4d,
         Expect(0, [], ["sub-bad/anat/sub-bad_T1w.nii.gz"]), deface=True),
    Case("bad_sidecar", "a BIDS sidecar that is not valid JSON",
         "the sidecar named and left out; the image published with the remaining "
         "metadata; sub-good published", bad_sidecar,
         Expect(65, ["sub-bad/anat/sub-bad_T1w.json: left out: not a valid JSON file"],
                GOOD_FILES + ["sub-bad/anat/sub-bad_T1w.nii.gz"])),
    Case("output_inside_input", "OUTPUT_DIR inside BIDS_DIR",
         "refused before anything is written, with a suggested place", output_inside_input,
         Expect(64, ["must not be inside BIDS_DIR"])),
    Case("bad_folder_names", "participant folders whose names are not BIDS labels "
         "(sub-a_b, sub-x..y)",
         "each folder named and skipped; sub-good published", bad_folder_names,
         Expect(65, ["sourcedata/sub-a_b: not a valid participant folder",
                     "sub-x..y: not a valid participant folder"], GOOD_FILES)),
    Case("disk_full", "a full disk (OUTPUT_DIR on a 192 KiB tmpfs, root only)",
         "the participant fails (no space left on device); what it had published is "
         "withdrawn; no temporary file left", disk_full,
         Expect(73, ["sub-good: cannot write to", "No space left on device"], [], [],
                ["good"]), needs_root=True),
    Case("file_size_limit", "a file size limit (ulimit -f 1 MiB)",
         "the participant fails (file too large), nothing published", file_size_limit,
         Expect(73, ["sub-bad: cannot write (File too large)"], [], ["sub-bad"], ["bad"])),
]


def corpus_table() -> str:
    """``tests/CORPUS.md``: the corpus as a table (for the README)."""
    lines = [
        "# Bad-input corpus",
        "",
        "Generated from `tests/badinput.py` (`BIDSDEID_WRITE_CORPUS=1 pytest "
        "tests/test_reliability_corpus.py -k table` rewrites it); every row is run "
        "through the CLI by `tests/test_reliability_corpus.py` on copies of "
        "../shared/data. `sub-good` is a whole participant beside the bad one.",
        "",
        "In every case: no traceback (one `bidsdeid:` line per problem, details in "
        "`PRIVATE_DIR/logs/`), the failed item is named, the input is byte-identical "
        "afterwards, and no temporary file is left in OUTPUT_DIR. Exit codes: 0 success, "
        "65 bad input (also when the rest was published), 64 usage, 73 cannot write.",
        "",
        "The messages column lists what the test requires on the terminal (each a "
        "substring of one `bidsdeid:` line, also in the private log); `sub-bad FAILED` "
        "means the participant is reported as failed.",
        "",
        "| input kind | exit | messages | outcome |",
        "|---|---|---|---|",
    ]
    for c in CASES:
        said = [f"`{m}`" for m in c.expect.messages]
        said += [f"`sub-{label} FAILED`" for label in c.expect.failed]
        lines.append(f"| {c.kind} | {c.expect.exit_code} | {'<br>'.join(said) or '-'} "
                     f"| {c.outcome} |")
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- corpus:begin -->", "<!-- corpus:end -->"


def readme_table() -> str:
    """The corpus in README.md (input kind, exit code, outcome), between the markers."""
    lines = [README_BEGIN, "| input kind | exit | outcome |", "|---|---|---|"]
    lines += [f"| {c.kind} | {c.expect.exit_code} | {c.outcome} |" for c in CASES]
    return "\n".join([*lines, README_END])


def with_readme_table(readme: str) -> str:
    """``readme`` with its corpus block replaced by :func:`readme_table`."""
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    return readme[:start] + readme_table() + readme[end:]
