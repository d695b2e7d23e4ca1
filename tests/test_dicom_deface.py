"""The --dicom-out stage on real series with a removed region on their real grid
(a box, no registration: :func:`dicom_support.box_deface`): which series are written,
with which pixels, and every way a series is refused rather than published with its
face. The whole pipeline with real defacing is in test_dicom_deface_cli.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_support import (
    copy_set,
    dcm2niix_bin,
    deface_series,
    removed_voxels,
    run_dcm2niix,
    stage_dicom,
    staged_files,
)
from pydicom.uid import JPEGLosslessSV1, RLELossless

from bidsdeid.config import DefaceOptions
from bidsdeid.context import ParticipantContext
from bidsdeid.deface.result import DefaceResult
from bidsdeid.dicom import pixelstream

pytestmark = [pytest.mark.needs_shared,
              pytest.mark.skipif(dcm2niix_bin() is None, reason="dcm2niix not installed")]

XA_T1W = "dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl"


def _xa_t1w(shared: Path, dest: Path, transfer_syntax: str | None = None,
            preamble: bool = True) -> Path:
    """The XA30 enhanced T1w (one file, 96 frames), optionally compressed or without a
    preamble (the pydicom engine's path)."""
    src = next((shared / XA_T1W).glob("*.dcm"))
    dest.mkdir(parents=True)
    out = dest / "t1w.dcm"
    ds = pydicom.dcmread(src)
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, generate_instance_uid=False)
    elif transfer_syntax is not None:  # relabelled, not decodable as what it claims
        ds.compress(RLELossless, generate_instance_uid=False)
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(out, enforce_file_format=preamble)
    return out


def _pixels(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


def _image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asanyarray(img.dataobj.get_unscaled()), img.affine


def _defaced_like_image(ctx: ParticipantContext, result: DefaceResult, tmp: Path) -> None:
    """dcm2niix of the written series gives the defaced image: same affine, same
    voxels; the removed region is zero; the audit counts exactly its voxels."""
    folder = staged_files(ctx)[0].parent
    got, affine = _image(run_dcm2niix(folder, tmp / "check")[0])
    assert result.defaced is not None and result.removed_mask is not None
    want, want_affine = _image(result.defaced)
    mask = np.asanyarray(nib.load(result.removed_mask).dataobj) > 0
    assert np.allclose(affine, want_affine, atol=1e-4)
    assert np.array_equal(got, want)
    assert not got[mask].any()
    audit = json.loads(next((ctx.audit_dir / "dicom").glob("*series-5.json")).read_text())
    assert audit["pixels"]["removed"] == removed_voxels(result)
    assert audit["pixels"]["action"] == "defaced"


@pytest.mark.parametrize("variant", ["native", "rle", "no-preamble", "rle-no-preamble"])
def test_xa30_enhanced_t1w_is_defaced_like_its_image(shared_data: Path, tmp_path: Path,
                                                    variant: str) -> None:
    """Byte engine (native, RLE decoded frame by frame) and pydicom engine (no
    preamble): the same defaced voxels; compressed input is written uncompressed."""
    compressed = variant.startswith("rle")
    src = _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-x1",
                  RLELossless if compressed else None, preamble="no-preamble" not in variant)
    found: dict[str, DefaceResult] = {}

    def prepare(ctx: ParticipantContext) -> None:
        found["r"] = deface_series(ctx, 5, tmp_path)

    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "x1", prepare=prepare)
    assert not [p for p in ctx.problems if p.level == "error"]
    _defaced_like_image(ctx, found["r"], tmp_path)
    out = staged_files(ctx)[0]
    ds = pydicom.dcmread(out)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    a, b = _pixels(src), ds.pixel_array
    changed = a != b
    assert changed.any() and not b[changed].any()  # only zeros written
    audit = json.loads(next((ctx.audit_dir / "dicom").glob("*.json")).read_text())
    assert ("decoded_from" in audit["pixels"]) == compressed


def _refused(ctx: ParticipantContext, words: tuple[str, ...]) -> None:
    assert staged_files(ctx) == []
    record = json.loads(next((ctx.audit_dir / "quarantine").glob("*series-5.json")).read_text())
    assert record["action"] == "quarantined"
    assert any(w in record["reason"] for w in words), record["reason"]
    assert any(p.where == "series 5" and "not shared" in p.message for p in ctx.problems)
    assert list((ctx.config.quarantine_dir / f"sub-{ctx.input_label}").rglob("*.dcm"))


def _box(tmp: Path, image_of: list[Path] | None = None) -> Callable[[ParticipantContext],
                                                                      None]:
    def prepare(ctx: ParticipantContext) -> None:
        deface_series(ctx, 5, tmp, image_of)

    return prepare


def test_compressed_without_a_decoder_is_refused(shared_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-c1", RLELossless)
    monkeypatch.setattr(pixelstream, "decoder_available", lambda _ts: False)
    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "c1", prepare=_box(tmp_path))
    _refused(ctx, ("cannot decode",))


def test_undecodable_compressed_data_is_refused(shared_data: Path, tmp_path: Path) -> None:
    """RLE bytes labelled JPEG Lossless: with no JPEG decoder the series is refused as
    undecodable; with one, decoding fails and the series is refused all the same."""
    _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-j1", JPEGLosslessSV1)
    real = sorted((shared_data / XA_T1W).glob("*.dcm"))  # the image: the real series
    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "j1", prepare=_box(tmp_path, real))
    _refused(ctx, ("cannot decode", "could not be decoded"))


def test_pixels_outside_the_image_refuse_the_series(shared_data: Path, tmp_path: Path) -> None:
    """A removed region on a grid 80 mm away from the series' pixels."""
    _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-o1")

    def prepare(ctx: ParticipantContext) -> None:
        result = deface_series(ctx, 5, tmp_path)
        assert result.removed_mask is not None
        img = nib.load(result.removed_mask)
        affine = img.affine.copy()
        affine[0, 3] += 80.0
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), affine), result.removed_mask)

    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "o1", prepare=prepare)
    _refused(ctx, ("outside the converted image",))


def test_a_series_that_loses_less_than_its_image_is_refused(shared_data: Path,
                                                            tmp_path: Path) -> None:
    """The coverage gate: a removed region that lies where no pixel is (a grid larger
    than the series) removes nothing from the DICOM: refused, not published."""
    _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-g1")

    def prepare(ctx: ParticipantContext) -> None:
        result = deface_series(ctx, 5, tmp_path)
        assert result.removed_mask is not None
        img = nib.load(result.removed_mask)
        data = np.asanyarray(img.dataobj)
        n = data.shape[0]
        grown = np.zeros((3 * n, *data.shape[1:]), np.uint8)
        grown[2 * n:] = 1  # the removed region: beyond the series, on the grown grid
        nib.save(nib.Nifti1Image(grown, img.affine), result.removed_mask)

    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "g1", prepare=prepare)
    _refused(ctx, ("lost less of the face",))


def _anat_without_mask(ctx: ParticipantContext, result: DefaceResult | None) -> None:
    assert ctx.dicom is not None
    series = ctx.dicom.series[0]
    rel = f"sub-{ctx.output_label}/anat/sub-{ctx.output_label}_T1w.nii.gz"
    ctx.results["series_outputs"] = {series.series_uid: [rel]}
    if result is not None:
        result.rel_path = rel
        ctx.results["deface"] = [result]


def test_anatomical_series_not_defaced_on_request_is_written_with_a_warning(
        shared_data: Path, tmp_path: Path) -> None:
    src = _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-n1")
    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "n1",
                      deface=DefaceOptions(modalities=["none"]),
                      prepare=lambda c: _anat_without_mask(c, None))
    out = staged_files(ctx)
    assert len(out) == 1 and np.array_equal(_pixels(out[0]), _pixels(src))
    assert any("written with its face" in p.message for p in ctx.problems)
    audit = json.loads(next((ctx.audit_dir / "dicom").glob("*series-5.json")).read_text())
    assert audit["pixels"]["action"] == "not defaced (by request)"
    # excluded by --deface-modalities: the deface stage's "not defaced" record
    record = DefaceResult("x", "T1w", "not defaced", src, None, None, None, None)
    ctx2 = stage_dicom(tmp_path / "in", tmp_path / "run2", "n1",
                       deface=DefaceOptions(modalities=["T2w"]),
                       prepare=lambda c: _anat_without_mask(c, record))
    assert len(staged_files(ctx2)) == 1
    assert any("written with its face" in p.message for p in ctx2.problems)


@pytest.mark.parametrize("record", ["missing", "failed"])
def test_anatomical_series_without_a_good_defacing_is_not_written(
        shared_data: Path, tmp_path: Path, record: str) -> None:
    src = _xa_t1w(shared_data, tmp_path / "in" / "sourcedata" / "sub-m1")
    result = None
    if record == "failed":
        result = DefaceResult("x", "T1w", "anchor", src, None, None, None, None,
                              error="safety gate failed")
    ctx = stage_dicom(tmp_path / "in", tmp_path / "run", "m1",
                      prepare=lambda c: _anat_without_mask(c, result))
    assert staged_files(ctx) == []
    left = json.loads((ctx.audit_dir / "dicom" / "left_out.json").read_text())
    assert [r["series"] for r in left] == ["5"]
    assert any(p.where == "series 5" and "not written" in p.message for p in ctx.problems)


def test_series_left_out_of_the_conversion_are_not_written(shared_data: Path,
                                                           tmp_path: Path) -> None:
    """Only series with a BIDS image in this run: the others get a PHI-free audit line
    and a warning naming the series number."""
    bids = tmp_path / "in"
    copy_set(shared_data, "xa30", bids / "sourcedata" / "sub-l1", 1)

    def only_two(ctx: ParticipantContext) -> None:
        assert ctx.dicom is not None
        keep = {s.series_uid for s in ctx.dicom.series if s.series_number in (7, 10)}
        ctx.results["series_outputs"] = {k: v for k, v in ctx.results["series_outputs"].items()
                                         if k in keep}

    ctx = stage_dicom(bids, tmp_path / "run", "l1", prepare=only_two)
    written = sorted({p.parent.name for p in staged_files(ctx)})
    assert written == ["10", "7"]
    left = json.loads((ctx.audit_dir / "dicom" / "left_out.json").read_text())
    assert sorted(int(r["series"]) for r in left) == [5, 8, 9, 11, 12, 13, 14, 16, 25]
    assert all(set(r) == {"series", "session", "action", "reason"} for r in left)
    warned = {p.where for p in ctx.problems if "not written to sourcedata" in p.message}
    assert warned == {f"series {r['series']}" for r in left}
