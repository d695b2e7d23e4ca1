"""The --dicom-out stage on the real sessions: layout, UIDs, validity, pixels, images,
mapping files, audit and quarantine. The two anatomical series (Philips 1301, XA30 5)
are defaced with a box-shaped removed region on their real grid
(:func:`dicom_support.deface_series`); every other series keeps its pixels."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import tree_digest
from dicom_support import (
    KEY,
    OTHER_KEY,
    all_uids,
    copy_set,
    dciodvfy_errors,
    dcm2niix_bin,
    deface_series,
    dicom_inputs,
    run_dcm2niix,
    stage_dicom,
    staged_files,
    walk_paths,
)

from bidsdeid.config import DeidOptions
from bidsdeid.context import ParticipantContext
from bidsdeid.deface.result import DefaceResult
from bidsdeid.dicom.values import is_public_uid

pytestmark = [pytest.mark.needs_shared, pytest.mark.xdist_group("dicom_stage")]


LABELS = {"xa": "xa30", "ge": "ge", "ph": "philips", "tc": "tcia"}
DEFACED = {"xa": 5, "ph": 1301}  # participant -> its anatomical series, defaced


@dataclass
class Staged:
    bids: Path
    ctxs: dict[str, ParticipantContext]
    inputs: list[Path]
    outputs: list[Path]
    before: dict[str, str]
    after: dict[str, str]
    defaced: dict[str, DefaceResult]  # participant -> the defacing of its anatomical series

    @property
    def private_dir(self) -> Path:
        return self.ctxs["xa"].config.private_dir

    def out_dir(self, label: str, series: str) -> Path:
        return self.ctxs[label].staging / "sourcedata" / f"sub-{label}" / series

    @cached_property
    def _pairs(self) -> list[tuple[Path, Path]]:
        by_sop = {_sop(o): o for o in self.outputs}
        return [(f, by_sop[KEY.uid(_sop(f))]) for f in self.inputs
                if KEY.uid(_sop(f)) in by_sop]

    def pairs(self) -> Iterator[tuple[Path, Path]]:
        """(input, output) of every written file, matched through the keyed SOP UID."""
        yield from self._pairs


@functools.cache
def _header(path: Path) -> pydicom.Dataset:
    """A file's header, read once for the whole module (the tests only read it)."""
    return pydicom.dcmread(path, stop_before_pixels=True)


def _sop(path: Path) -> str:
    return str(_header(path).SOPInstanceUID)


@pytest.fixture(scope="module")
def staged(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Staged:
    """Four participants, one per shared session (a slice of the big Philips one, with
    its T1w series complete), staged with 2 processes into one private dir."""
    tmp = tmp_path_factory.mktemp("stage")
    bids = tmp / "in"
    for label, name in LABELS.items():
        root = bids / "sourcedata" / f"sub-{label}"
        copy_set(shared_data, name, root, 3 if name == "philips" else None)
        if name == "philips":
            for p in sorted((shared_data / "dicom/philips_elition_r571").glob("1301_*")):
                (root / p.name).write_bytes(p.read_bytes())
    inputs = dicom_inputs(bids)
    before = tree_digest(bids)
    defaced: dict[str, DefaceResult] = {}

    def anatomical(ctx: ParticipantContext) -> None:
        label = ctx.input_label
        if label in DEFACED:
            defaced[label] = deface_series(ctx, DEFACED[label], tmp / "deface")

    ctxs = {label: stage_dicom(bids, tmp / "run", label, nprocs=2, prepare=anatomical)
            for label in LABELS}
    outputs = [o for c in ctxs.values() for o in staged_files(c)]
    return Staged(bids, ctxs, inputs, outputs, before, tree_digest(bids), defaced)


def _is_defaced(out: Path) -> bool:
    return (out.parent.parent.name[4:], out.parent.name) in {
        (label, str(n)) for label, n in DEFACED.items()}


def test_input_tree_is_unchanged(staged: Staged) -> None:
    assert staged.after == staged.before


def test_layout_carries_nothing_from_the_input(staged: Staged) -> None:
    rels = [o.relative_to(c.staging).as_posix() for c in staged.ctxs.values()
            for o in staged_files(c)]
    assert rels and all(re.fullmatch(r"sourcedata/sub-(xa|ge|ph|tc)/\d+(-\d+)?/\d+\.dcm", r)
                        for r in rels)
    by_dir: dict[str, list[int]] = {}
    for o in staged.outputs:
        by_dir.setdefault(str(o.parent), []).append(int(o.stem))
    for numbers in by_dir.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
    # every input image file is written once; the SR document is not
    srs = [f for f in staged.inputs if "Phoenix" in str(f)]
    assert len(staged.outputs) == len(staged.inputs) - len(srs)
    for ctx in staged.ctxs.values():
        assert not [f for f in ctx.staging.rglob("*") if f.name.startswith(".bidsdeid-tmp")]


def test_instance_order_is_kept(staged: Staged) -> None:
    for f, out in staged.pairs():
        a = _header(f)
        b = _header(out)
        assert a.get("InstanceNumber") == b.get("InstanceNumber")
    folder = staged.out_dir("ph", "1301")
    numbers = [int(_header(folder / f"{n}.dcm").InstanceNumber)
               for n in range(1, 171)]
    assert numbers == sorted(numbers)


def test_uids_are_keyed_one_to_one_and_consistent(staged: Staged) -> None:
    mapping = _read_csv(staged.private_dir / "uid_mapping.csv")
    assert len(set(mapping.values())) == len(mapping), "two UIDs map to one"
    assert all(new == KEY.uid(old) and new.startswith("2.25.") and len(new) <= 64
               for old, new in mapping.items())
    originals = all_uids(staged.inputs)
    new_uids = all_uids(staged.outputs)
    assert new_uids <= set(mapping.values()), "a UID was written that is not in the mapping"
    assert not (new_uids & originals)
    # each UI attribute, at each place, is the keyed value of the input's
    pairs = 0
    for f, out in staged.pairs():
        a, b = _header(f), _header(out)
        out_items = dict(walk_paths(b))
        for path, item_a in walk_paths(a):
            item_b = out_items.get(path)
            if item_b is None:
                continue
            for elem in item_a:
                if elem.VR != "UI" or elem.tag not in item_b or not elem.value:
                    continue
                old = [str(v) for v in (elem.value if elem.VM > 1 else [elem.value])]
                got = item_b[elem.tag].value
                new = [str(v) for v in (got if item_b[elem.tag].VM > 1 else [got])]
                assert new == [o if is_public_uid(o) else mapping[o] for o in old]
                pairs += 1
        assert b.file_meta.MediaStorageSOPInstanceUID == b.SOPInstanceUID
    assert pairs > 1000


def test_references_point_to_the_new_instances(staged: Staged) -> None:
    sop_in = {str(_header(f).SOPInstanceUID)
              for f in staged.inputs}
    sop_out = {str(_header(o).SOPInstanceUID)
               for o in staged.outputs}
    inside = 0
    for f, out in staged.pairs():
        a = _header(f)
        b = _header(out)
        out_items = dict(walk_paths(b))
        for path, item_a in walk_paths(a):
            ref = item_a.get("ReferencedSOPInstanceUID")
            item_b = out_items.get(path)
            if ref is None or item_b is None:
                continue
            assert str(item_b.ReferencedSOPInstanceUID) == KEY.uid(str(ref))
            if str(ref) in sop_in:  # a reference inside the session stays inside it
                assert str(item_b.ReferencedSOPInstanceUID) in sop_out
                inside += 1
    assert inside > 0, "no reference between the session's instances was found"
    # study, series and frame of reference: shared exactly where they were shared
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "SeriesInstanceUID"):
        groups: dict[str, set[str]] = {}
        for f, out in staged.pairs():
            old = _header(f).get(keyword)
            if old is not None:
                new = _header(out).get(keyword)
                groups.setdefault(str(old), set()).add(str(new))
        assert all(len(v) == 1 for v in groups.values()), keyword
        assert len(set().union(*groups.values())) == len(groups), keyword


def test_same_key_same_bytes_other_key_other_uids(staged: Staged, tmp_path: Path) -> None:
    bids = tmp_path / "in"
    sub = bids / "sourcedata" / "sub-s1"
    sub.mkdir(parents=True)
    for p in sorted((staged.bids / "sourcedata" / "sub-ge").glob("*.dcm"))[:8]:
        (sub / p.name).write_bytes(p.read_bytes())
    one = staged_files(stage_dicom(bids, tmp_path / "one", "s1"))
    two = staged_files(stage_dicom(bids, tmp_path / "two", "s1", nprocs=2))
    other = staged_files(stage_dicom(bids, tmp_path / "other", "s1", key=OTHER_KEY))
    assert len(one) == 8
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    assert not (all_uids(one) & all_uids(other))
    assert pydicom.dcmread(one[0]).StudyDate != pydicom.dcmread(other[0]).StudyDate


@pytest.mark.skipif(not any(os.access(os.path.join(d, "dciodvfy"), os.X_OK)
                            for d in os.environ.get("PATH", "").split(os.pathsep)),
                    reason="dciodvfy (Debian dicom3tools) not installed")
def test_dciodvfy_reports_no_new_error(staged: Staged) -> None:
    seen: set[str] = set()
    checked = 0
    for f, out in staged.pairs():
        series = str(out.parent)
        enhanced = _header(f).get("NumberOfFrames") is not None
        if series in seen and not enhanced:  # first file of each series, every enhanced file
            continue
        seen.add(series)
        new = dciodvfy_errors(out) - dciodvfy_errors(f)
        assert not new, f"{f.name}: {sorted(new)[:5]}"
        checked += 1
    assert checked >= 15


def test_pixel_data_is_kept_or_defaced(staged: Staged) -> None:
    """Byte-identical pixel data in every series but the anatomical ones; there, values
    change only to zero, in as many pixels as the removed region has voxels."""
    n = 0
    removed = {label: 0 for label in DEFACED}
    for f, out in staged.pairs():
        a, b = pydicom.dcmread(f), pydicom.dcmread(out)
        if not _is_defaced(out):
            assert a.get_item(0x7FE00010).value == b.get_item(0x7FE00010).value, f.name
        else:
            pa, pb = a.pixel_array, b.pixel_array
            changed = pa != pb
            assert not pb[changed].any(), f.name
            removed[out.parent.parent.name[4:]] += int(changed.sum())
        n += 1
    assert n == len(staged.outputs)
    for label, result in staged.defaced.items():
        mask = np.asanyarray(nib.load(result.removed_mask).dataobj) > 0  # type: ignore[arg-type]
        audit = next((staged.ctxs[label].audit_dir / "dicom").glob(
            f"*series-{DEFACED[label]}.json")).read_text()
        assert json.loads(audit)["pixels"]["removed"] == int(mask.sum()) > 0
        assert removed[label] > 0


def _originals_of(staged_inputs: list[Path], out_dir: Path, dest: Path) -> Path:
    sop_out = {str(_header(o).SOPInstanceUID)
               for o in out_dir.glob("*.dcm")}
    dest.mkdir()
    for f in staged_inputs:
        if KEY.uid(str(_header(f).SOPInstanceUID)) in sop_out:
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _same_images(a: list[Path], b: list[Path], scaled: bool) -> None:
    assert a and len(a) == len(b)
    for x, y in zip(a, b):
        ia, ib = nib.load(x), nib.load(y)
        assert ia.shape == ib.shape
        assert np.allclose(ia.affine, ib.affine, atol=1e-4)
        assert np.array_equal(ia.dataobj.get_unscaled(), ib.dataobj.get_unscaled())
        if scaled:
            assert np.array_equal(np.asanyarray(ia.dataobj), np.asanyarray(ib.dataobj))


@pytest.mark.skipif(dcm2niix_bin() is None, reason="dcm2niix not installed")
@pytest.mark.parametrize("label,series", [("ph", "1301"), ("xa", "5"), ("ge", "4")])
def test_dcm2niix_gives_the_same_image(staged: Staged, tmp_path: Path, label: str,
                                       series: str) -> None:
    """Same affine and voxels (for the anatomical series: those of the defaced image).
    Philips' precise intensity scaling lives in private (2005,xx0E), removed by
    default: dcm2niix then uses the public rescale slope, so for Philips the stored
    voxels are compared here and the scaled values with Retain Safe Private below."""
    out_dir = staged.out_dir(label, series)
    if label in staged.defaced:  # the image it became, defaced: same voxels, same affine
        defaced = staged.defaced[label].defaced
        assert defaced is not None
        _same_images([defaced], run_dcm2niix(out_dir, tmp_path / "b"), scaled=label != "ph")
        return
    originals = _originals_of(staged.inputs, out_dir, tmp_path / "orig")
    _same_images(run_dcm2niix(originals, tmp_path / "a"), run_dcm2niix(out_dir, tmp_path / "b"),
                 scaled=label != "ph")


@pytest.mark.skipif(dcm2niix_bin() is None, reason="dcm2niix not installed")
def test_dcm2niix_philips_scaling_with_safe_private(shared_data: Path, tmp_path: Path) -> None:
    bids = tmp_path / "in"
    sub = bids / "sourcedata" / "sub-p2"
    sub.mkdir(parents=True)
    for p in sorted((shared_data / "dicom/philips_elition_r571").glob("1301_*")):
        (sub / p.name).write_bytes(p.read_bytes())
    ctx = stage_dicom(bids, tmp_path / "run", "p2", nprocs=2,
                      options=DeidOptions(retain_safe_private=True))
    out_dir = ctx.staging / "sourcedata" / "sub-p2" / "1301"
    ds = pydicom.dcmread(out_dir / "1.dcm", stop_before_pixels=True)
    block = ds.private_block(0x2005, "Philips MR Imaging DD 001")
    assert 0x0E in block  # the safe scale slope was kept
    _same_images(run_dcm2niix(sub, tmp_path / "a"), run_dcm2niix(out_dir, tmp_path / "b"),
                 scaled=True)


def _read_csv(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id_old", "id_new"]
    return dict(rows[1:])


def test_mapping_files(staged: Staged) -> None:
    private = staged.private_dir
    for name in ("uid_mapping.csv", "patid_mapping.csv"):
        path = private / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        rows = _read_csv(path)
        assert list(rows) == sorted(rows)
    patids = _read_csv(private / "patid_mapping.csv")
    expected = {}
    for f in staged.inputs:
        label = f.relative_to(staged.bids / "sourcedata").parts[0][len("sub-"):]
        pid = str(_header(f).PatientID).strip()
        if pid and "Phoenix" not in str(f):
            expected[pid] = label
    assert patids == expected  # four participants merged into one file


def test_audit_lists_actions_without_values(staged: Staged) -> None:
    audits = sorted(p for c in staged.ctxs.values() for p in (c.audit_dir / "dicom").glob("*"))
    assert len(audits) == len({o.parent for o in staged.outputs})
    tokens = [t for c in staged.ctxs.values()
              for t in c.identifiers.tokens(["name", "id", "institution", "device"])
              if len(t.text) >= 5]
    for path in audits:
        text = path.read_text()
        assert '"PatientName"' in text and '"SOPInstanceUID"' in text
        for tok in tokens:
            assert not tok.pattern().search(text.encode()), (path.name, tok.kind)
        assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", text.replace("2.25.", "")), path.name


def test_sr_document_is_quarantined(staged: Staged) -> None:
    ctx = staged.ctxs["xa"]
    qdir = ctx.config.quarantine_dir / "sub-xa"
    quarantined = sorted(p for p in qdir.rglob("*") if p.is_file())
    srs = sorted(f for f in staged.inputs if "Phoenix" in str(f))
    assert len(quarantined) == len(srs) == 7
    for q in quarantined:
        src = staged.bids / "sourcedata" / "sub-xa" / q.relative_to(qdir)
        assert q.read_bytes() == src.read_bytes()
        assert stat.S_IMODE(q.stat().st_mode) == 0o600
    record = next((ctx.audit_dir / "quarantine").glob("*series-99.json")).read_text()
    assert "structured report" in record
    assert any("series 99" in p.where for p in ctx.problems)
    assert not (staged.out_dir("xa", "99")).exists()


def test_series_names_replace_descriptors(shared_data: Path, tmp_path: Path) -> None:
    bids = tmp_path / "in"
    src = copy_set(shared_data, "ge", bids / "sourcedata" / "sub-d1", 3)
    uid = str(pydicom.dcmread(dicom_inputs(src)[0], stop_before_pixels=True).SeriesInstanceUID)
    ctx = stage_dicom(bids, tmp_path / "run", "d1", series_names={uid: "task-rest_bold"})
    for out in staged_files(ctx):
        ds = pydicom.dcmread(out, stop_before_pixels=True)
        assert ds.SeriesDescription == "task-rest_bold" and ds.ProtocolName == "task-rest_bold"
    assert ctx.results["dicom_out"]["files"] == 3
