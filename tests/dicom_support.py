"""Helpers for the DICOM de-identification tests (staging, planting, external tools)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from bidsdeid.bids.stage import load_inputs
from bidsdeid.config import DefaceOptions, DeidOptions, RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.deface.result import DefaceResult
from bidsdeid.dicom import stage as dicom_stage
from bidsdeid.dicom import tables
from bidsdeid.dicom.values import is_public_uid
from bidsdeid.participant import make_context
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import NULL_PROGRESS

KEY = ProjectKey(b"k" * 32)
OTHER_KEY = ProjectKey(b"q" * 32)

# Shared sets used by the tests: label -> folder under ../shared/data
DICOM_SETS = {
    "philips": "dicom/philips_elition_r571",
    "xa30": "dicom/siemens_xa30_enhanced",
    "ge": "dicom/ge_mr750_fmri",
    "penn": "deid/penn_prisma_pseudophi/dicom",
    "tcia": "deid/tcia_pseudophi_mr/dicom",
    "ctbrain": "deid/deid_data_ctbrain",
}


def copy_set(shared: Path, name: str, dest: Path, per_series: int | None = None) -> Path:
    """Copy a shared set to ``dest``; with ``per_series``, only that many files of each
    Philips series (files named ``<series>_<n>``) or of each subfolder."""
    src = shared / DICOM_SETS[name]
    if per_series is None:
        shutil.copytree(src, dest)
        return dest
    dest.mkdir(parents=True)
    groups: dict[str, list[Path]] = {}
    for p in sorted(src.rglob("*")):
        if p.is_file():
            key = p.parent.name + "/" + p.name.split("_")[0]
            groups.setdefault(key, []).append(p)
    for files in groups.values():
        for p in files[:per_series]:
            target = dest / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
    return dest


def stage_dicom(bids_dir: Path, root: Path, label: str, *, options: DeidOptions | None = None,
                nprocs: int = 1, key: ProjectKey = KEY,
                series_names: dict[str, str] | None = None,
                prepare: Callable[[ParticipantContext], None] | None = None,
                deface: DefaceOptions | None = None) -> ParticipantContext:
    """Stage 1 (load inputs) and the --dicom-out stage, as the pipeline runs them.

    The convert and deface stages do not run: every series counts as converted to a
    non-anatomical image (``ctx.results["series_outputs"]``), so its pixels are kept;
    ``prepare(ctx)`` runs before the DICOM stage and may say otherwise (anatomical
    images and their :class:`DefaceResult`, as the deface stage records them).
    """
    cfg = RunConfig(bids_dir=bids_dir, output_dir=root / "out", analysis_level="participant",
                    private_dir=root / "private", work_dir=root / "work", nprocs=nprocs,
                    dicom_out=True, deid=options or DeidOptions(),
                    deface=deface or DefaceOptions())
    ctx = make_context(cfg, key, label, NULL_PROGRESS)
    load_inputs(ctx)
    if series_names:
        ctx.results["series_names"] = series_names
    assert ctx.dicom is not None
    ctx.results["series_outputs"] = {
        s.series_uid: [f"sub-{label}/func/sub-{label}_task-s{i}_bold.nii.gz"]
        for i, s in enumerate(ctx.dicom.series)}
    if prepare is not None:
        prepare(ctx)
    dicom_stage.run(ctx)
    return ctx


def staged_files(ctx: ParticipantContext) -> list[Path]:
    return sorted((ctx.staging / "sourcedata").rglob("*.dcm"), key=lambda p: (
        str(p.parent), int(p.stem)))


def dicom_inputs(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            try:
                pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:  # noqa: BLE001, S112 - not DICOM: the tool skips it too
                continue
            out.append(p)
    return out


def walk_items(ds: Dataset) -> Iterator[Dataset]:
    """Every dataset (the top level and every sequence item, at any depth)."""
    for _path, item in walk_paths(ds):
        yield item


def walk_paths(ds: Dataset, path: tuple[tuple[int, int], ...] = ()
               ) -> Iterator[tuple[tuple[tuple[int, int], ...], Dataset]]:
    """(path, item) for the top level and every sequence item; a path is the list of
    (sequence tag, item index) that leads to the item, so two files can be compared
    place by place even when one lost a sequence."""
    yield path, ds
    for elem in list(ds):
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from walk_paths(item, path + ((int(elem.tag), i),))


def all_uids(paths: Iterable[Path]) -> set[str]:
    """Every non-public UI value in the files (file meta included)."""
    uids: set[str] = set()
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        for d in [ds.file_meta, *walk_items(ds)]:
            for elem in d:
                if elem.tag == 0x00020012:  # Implementation Class UID: software, not data
                    continue
                if elem.VR == "UI" and elem.value:
                    values = elem.value if isinstance(elem.value, list | MultiValue) else [
                        elem.value]
                    for v in values:
                        v = str(v).strip("\x00 ")
                        if v and not is_public_uid(v):
                            uids.add(v)
    return uids


# -- planting identifiers ----------------------------------------------------------------
class Planter:
    """Unique tokens planted in every identifying attribute of a participant's files.

    The same tag gets the same token in every file (one patient); every token is
    remembered so a test can search the output bytes for it.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.upper()[:3]
        self.tokens: dict[str, str] = {}  # token -> where it was planted
        self.dates: set[str] = set()
        self.uids: set[str] = set()
        self._n = 0

    def token(self, where: str) -> str:
        self._n += 1
        tok = f"QZ{self.prefix}{self._n:05d}"
        self.tokens[tok] = where
        return tok

    def value(self, tag: int, vr: str, where: str) -> object | None:
        if vr == "PN":
            return f"{self.token(where)}^{self.token(where)}"
        if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "AE", "CS", "UR"):
            return self.token(where)
        if vr == "DA":
            self._n += 1
            date = f"19{(self._n % 90) + 10:02d}{(self._n % 12) + 1:02d}{(self._n % 27) + 1:02d}"
            self.dates.add(date)
            return date
        if vr == "DT":
            self._n += 1
            date = f"19{(self._n % 90) + 10:02d}{(self._n % 12) + 1:02d}{(self._n % 27) + 1:02d}"
            self.dates.add(date)
            return date + "101112"
        if vr == "UI":
            self._n += 1
            uid = f"1.2.826.0.1.3680043.10.77.{self._n}"
            self.uids.add(uid)
            return uid
        if vr == "AS":
            return "093Y"
        return None


def _top_level_plan(planter: Planter) -> list[tuple[int, str, object]]:
    """(tag, VR, value) for every Table E.1-1 row that can be planted at the top level."""
    plan = []
    for row in tables.e1_1():
        tag = row.tag
        if tag is None or (tag >> 16) in (0x0000, 0x0002):
            continue  # command and file meta elements do not belong in a dataset
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if vr == "SQ":
            item = Dataset()
            item.OperatorsName = planter.value(0x00081070, "PN", f"{row.name} item")
            item.ImageComments = planter.token(f"{row.name} item")
            item.ReferencedSOPInstanceUID = planter.value(0x00081155, "UI", row.name)
            plan.append((tag, vr, item))
            continue
        value = planter.value(tag, vr, row.name)
        if value is not None:
            plan.append((tag, vr, value))
    return plan


def plant_files(paths: list[Path], planter: Planter, *, study_year: int | None = None) -> None:
    """Plant identifiers in every file (in place: pass copies)."""
    plan = _top_level_plan(planter)
    nested_name = planter.value(0x00081070, "PN", "nested item OperatorsName")
    nested_text = planter.token("nested item ImageComments")
    private_text = planter.token("private block")
    private_uid = planter.value(0, "UI", "private block UID")
    for path in paths:
        ds = pydicom.dcmread(path, force=True)
        year = study_year or int(str(ds.get("StudyDate", "2000"))[:4] or 2000)
        for where, item in list(walk_paths(ds))[1:]:
            if any(i > 1 for _tag, i in where):
                continue  # the first two items of every sequence, at every depth
            item.OperatorsName = nested_name
            item.ImageComments = nested_text
            block = item.private_block(0x0011, "PLANTED NESTED", create=True)
            block.add_new(0x01, "LO", private_text)
        for tag, vr, value in plan:
            if tag in ds and vr == "UI":
                continue  # keep real UIDs: the original-UID check covers them
            if tag in (0x00280301, 0x00280302):
                continue
            if vr == "SQ":
                ds.add_new(tag, vr, Sequence([_copy(value)]))  # type: ignore[arg-type]
            else:
                ds.add_new(tag, vr, value)
        ds.PatientBirthDate = f"{year - 93}0101"
        planter.dates.add(ds.PatientBirthDate)
        ds.PatientAge = "093Y"
        block = ds.private_block(0x0011, "PLANTED PRIVATE", create=True)
        block.add_new(0x01, "LO", private_text)
        block.add_new(0x02, "UI", private_uid)
        blob = f"{private_text} {ds.SOPInstanceUID}".encode()  # like a CSA header
        block.add_new(0x03, "OB", blob + b" " * (len(blob) % 2))
        ds.save_as(path)


def _copy(ds: Dataset) -> Dataset:
    out = Dataset()
    for elem in ds:
        out.add_new(elem.tag, elem.VR, elem.value)
    return out


# -- external tools ------------------------------------------------------------------------
def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's error lines for a file (values masked so inputs and outputs compare)."""
    proc = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True,
                          errors="replace", timeout=300, check=False)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]
    return {re.sub(r"<[^>]*>", "<>", re.sub(r"value = <[^>]*>", "", ln))
            if "value" in ln else ln for ln in lines}


def dcm2niix_bin() -> str | None:
    try:
        import dcm2niix

        path = str(dcm2niix.bin)
        if Path(path).is_file():
            return path
    except ImportError:  # pragma: no cover
        pass
    return shutil.which("dcm2niix")


def run_dcm2niix(folder: Path, out: Path) -> list[Path]:
    """Convert a folder of DICOM with dcm2niix; return the NIfTI files written."""
    exe = dcm2niix_bin()
    assert exe, "dcm2niix not found"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([exe, "-z", "y", "-b", "n", "-f", "%s_%e_%z", "-o", str(out),
                           str(folder)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return sorted(out.glob("*.nii.gz"))


# -- defaced series (a synthetic removed region on the real image grid) --------------------
def box_deface(nii: Path, dest: Path, rel_path: str, suffix: str = "T1w") -> DefaceResult:
    """A :class:`DefaceResult` for the image ``nii`` (dcm2niix of a real series) whose
    removed region is a box in world space, the anterior-inferior quarter of the field
    of view: a face-like region on a real grid, without a registration. The "defaced"
    image is ``nii`` with zeros there, as the deface stage writes it."""
    img = nib.load(nii)
    shape = img.shape[:3]
    ijk = np.indices(shape).reshape(3, -1)
    ras = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
    y, z = ras[1], ras[2]
    box = (y > y.min() + 0.6 * np.ptp(y)) & (z < z.min() + 0.5 * np.ptp(z))
    removed = box.reshape(shape)
    assert 0 < removed.sum() < removed.size
    dest.mkdir(parents=True, exist_ok=True)
    mask_path, defaced_path = dest / "removed.nii.gz", dest / "defaced.nii.gz"
    mask = nib.Nifti1Image(removed.astype(np.uint8), img.affine)
    mask.set_sform(img.affine, code=1)
    mask.set_qform(img.affine, code=1)
    nib.save(mask, mask_path)
    stored = np.asanyarray(img.dataobj.get_unscaled()).copy()
    stored[removed] = 0
    out = nib.Nifti1Image(stored, img.affine, img.header)
    nib.save(out, defaced_path)
    return DefaceResult(rel_path=rel_path, suffix=suffix, role="anchor", original=nii,
                        defaced=defaced_path, removed_mask=mask_path, brain_mask=None,
                        template_warped=None)


def series_nifti(files: list[Path], dest: Path) -> Path:
    """dcm2niix of ``files`` (linked into a folder of their own): the one image."""
    src = dest / "dicom"
    src.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        (src / f"{i:05d}.dcm").symlink_to(f)
    out = run_dcm2niix(src, dest / "nii")
    assert len(out) == 1, out
    return out[0]


def deface_series(ctx: ParticipantContext, series_number: int, tmp: Path,
                  image_of: list[Path] | None = None) -> DefaceResult:
    """Mark ``series_number`` of ``ctx`` as an anatomical image defaced with a box
    (:func:`box_deface`), as the convert and deface stages would record it; the image
    is dcm2niix of the series' files, or of ``image_of``."""
    assert ctx.dicom is not None
    series = next(s for s in ctx.dicom.series if s.series_number == series_number)
    rel = f"sub-{ctx.output_label}/anat/sub-{ctx.output_label}_acq-s{series_number}_T1w.nii.gz"
    where = tmp / f"deface-{ctx.output_label}-{series_number}"
    files = image_of or [f.path for f in series.files]
    result = box_deface(series_nifti(files, where), where, rel)
    ctx.results.setdefault("series_outputs", {})[series.series_uid] = [rel]
    ctx.results.setdefault("deface", []).append(result)
    return result


def removed_voxels(result: DefaceResult) -> int:
    assert result.removed_mask is not None
    return int((np.asanyarray(nib.load(result.removed_mask).dataobj) > 0).sum())
