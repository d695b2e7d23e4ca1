"""Pixel defacing of DICOM, piece by piece: frame geometry (classic and enhanced), stored
formats and fill values, the half-voxel rule of the removed region, and the refusals
that keep un-defaced pixels out (synthetic datasets with known answers)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bidsdeid.deface.result import DefaceResult
from bidsdeid.dicom import facemask
from bidsdeid.dicom.facemask import MaskSource, SeriesFace
from bidsdeid.dicom.pixels import (
    FLOAT_PIXEL_DATA,
    PIXEL_DATA,
    FileFace,
    PixelRefused,
    frames_of,
    pixel_format,
)

LPS = np.diag([-1.0, -1.0, 1.0])


def _classic(ipp: list[float], iop: list[float], spacing: list[float], rows: int = 4,
             cols: int = 5, **kw: object) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 16, 0
    ds.ImagePositionPatient, ds.ImageOrientationPatient = ipp, iop
    ds.PixelSpacing = spacing
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_classic_pixel_centres_follow_the_standard() -> None:
    """Pixel (r, c) is at IPP + c * IOP[0:3] * PixelSpacing[1] + r * IOP[3:6] *
    PixelSpacing[0] (LPS), returned in RAS, row-major."""
    ds = _classic([10.0, -20.0, 30.0], [0, 1, 0, 0, 0, -1], [2.0, 3.0])
    frame = next(frames_of(ds, 1))
    pts = frame.points(0, 4, 5)
    assert pts.shape == (3, 20)
    for r in range(4):
        for c in range(5):
            lps = np.array([10.0, -20.0, 30.0]) + c * 3.0 * np.array([0, 1, 0]) \
                + r * 2.0 * np.array([0, 0, -1])
            assert np.allclose(pts[:, r * 5 + c], LPS @ lps)
    assert np.allclose(frame.points(2, 1, 5), pts[:, 10:15])


def _enhanced(n: int, shared_orientation: bool) -> Dataset:
    ds = _classic([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1])
    for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, k)
    ds.NumberOfFrames = n
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    shared.PixelMeasuresSequence = Sequence([measures])
    per = []
    for k in range(n):
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, float(k) * 2]
        item.PlanePositionSequence = Sequence([pos])
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = 2.0, float(k)
        item.PixelValueTransformationSequence = Sequence([transform])
        orient = Dataset()
        orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        if shared_orientation:
            shared.PlaneOrientationSequence = Sequence([orient])
        else:
            item.PlaneOrientationSequence = Sequence([orient])
        per.append(item)
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    return ds


@pytest.mark.parametrize("shared_orientation", [True, False])
def test_enhanced_frames_take_per_frame_then_shared_groups(shared_orientation: bool) -> None:
    frames = list(frames_of(_enhanced(3, shared_orientation), 3))
    assert len(frames) == 3
    for k, f in enumerate(frames):
        assert np.allclose(f.origin, [0, 0, 2 * k])
        assert np.allclose(f.per_column, LPS @ [0.5, 0, 0])
        assert np.allclose(f.per_row, LPS @ [0, 0.5, 0])
        assert (f.slope, f.intercept) == (2.0, float(k))


def test_frames_without_a_position_are_refused() -> None:
    ds = _enhanced(2, True)
    del ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
    with pytest.raises(PixelRefused, match="frame 2"):
        list(frames_of(ds, 2))
    with pytest.raises(PixelRefused, match="NumberOfFrames"):
        list(frames_of(_enhanced(2, True), 3))
    classic = _classic([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1])
    with pytest.raises(PixelRefused, match="multi-frame"):
        list(frames_of(classic, 2))
    del classic.ImageOrientationPatient
    with pytest.raises(PixelRefused):
        list(frames_of(classic, 1))


def test_formats_and_fill_values() -> None:
    ds = _classic([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1], BitsStored=12, PixelRepresentation=1)
    fmt = pixel_format(ds, PIXEL_DATA)
    assert fmt.dtype == np.dtype("<i2") and fmt.stored_range() == (-2048, 2047)
    # physical 0 through the rescale; out of range -> clipped to the stored range
    assert fmt.to_stored(np.zeros(1), 1.0, 0.0)[0] == 0
    assert fmt.to_stored(np.zeros(1), 2.0, 100.0)[0] == -50
    assert fmt.to_stored(np.zeros(1), 1.0, 1024.0)[0] == -1024
    assert fmt.to_stored(np.zeros(1), 1.0, 5000.0)[0] == -2048
    unsigned = pixel_format(_classic([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1]), PIXEL_DATA)
    assert unsigned.to_stored(np.zeros(1), 1.0, 1024.0)[0] == 0  # minimum of the range
    floats = pixel_format(ds, FLOAT_PIXEL_DATA)
    assert floats.dtype == np.dtype("<f4") and floats.to_stored(np.zeros(1), 1, 0)[0] == 0.0
    for bad in ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"},
                {"BitsAllocated": 1, "BitsStored": 1}, {"PhotometricInterpretation": "PALETTE COLOR"}):
        with pytest.raises(PixelRefused):
            pixel_format(_classic([0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1], **bad), PIXEL_DATA)


def _face(removed: np.ndarray, affine: np.ndarray) -> SeriesFace:
    return SeriesFace([MaskSource(removed, np.linalg.inv(affine))], "zero")


def test_half_voxel_rule() -> None:
    """On the grid: exactly the removed voxel. Off the grid by more than ALIGNED: also a
    point within half a voxel of a removed voxel. Outside the grid by more than a voxel:
    reported outside."""
    removed = np.zeros((5, 5, 5), bool)
    removed[2, 2, 2] = True
    face = _face(removed, np.diag([2.0, 2.0, 2.0, 1.0]))
    on = np.array([[4.0, 2.0, 4.0 + 0.01], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0]])
    s = face.sample(on)
    assert s.removed.tolist() == [True, False, True] and s.inside.all()
    # 0.3 voxel towards the removed voxel from its neighbour: within half a voxel
    near = np.array([[2.0 + 0.6], [4.0], [4.0]])
    assert face.sample(near).removed.tolist() == [True]
    # 0.3 voxel away from the removed voxel, beyond half a voxel of it
    far = np.array([[2.0 - 0.6], [4.0], [4.0]])
    assert face.sample(far).removed.tolist() == [False]
    # diagonal neighbours count too (every axis within one voxel)
    diag = np.array([[2.6], [2.6], [2.6]])
    assert face.sample(diag).removed.tolist() == [True]
    outside = np.array([[-5.0, 9.5], [0.0, 0.0], [0.0, 0.0]])
    assert face.sample(outside).inside.tolist() == [False, True]


def test_file_face_patches_only_the_removed_pixels() -> None:
    """A 4x5 frame on a 1 mm grid whose voxel (x=1..2, y=3) is removed: exactly those
    pixels become the stored value of physical 0, every other value is kept."""
    ds = _classic([0.0, 0.0, 0.0], [-1, 0, 0, 0, -1, 0], [1.0, 1.0],
                  RescaleSlope=2.0, RescaleIntercept=-10.0)
    # LPS IOP (-1,0,0),(0,-1,0) = RAS +x along columns, +y along rows
    removed = np.zeros((5, 4, 1), bool)
    removed[1:3, 3, 0] = True
    face = FileFace.of(_face(removed, np.eye(4)), ds, PIXEL_DATA)
    frame = np.arange(100, 120, dtype="<u2")
    out = face.deface(0, frame).reshape(4, 5)
    want = frame.reshape(4, 5).copy()
    want[3, 1:3] = 5  # (0 - -10) / 2
    assert np.array_equal(out, want)
    assert face.counts.removed == 2 and face.counts.total == 20
    with pytest.raises(PixelRefused, match="shorter"):
        face.deface_bytes(0, b"\x00" * 10)


def test_pixels_outside_the_image_refuse_the_file() -> None:
    ds = _classic([50.0, 0.0, 0.0], [-1, 0, 0, 0, -1, 0], [1.0, 1.0])
    face = FileFace.of(_face(np.ones((5, 4, 1), bool), np.eye(4)), ds, PIXEL_DATA)
    with pytest.raises(PixelRefused, match="outside"):
        face.deface(0, np.zeros(20, "<u2"))


def test_prepared_face_round_trips_with_refaced_values(tmp_path: Path) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-4, -4, -4]
    removed = np.zeros((4, 4, 4), bool)
    removed[0, :, :2] = True
    img = nib.Nifti1Image(removed.astype(np.uint8), affine)
    nib.save(img, tmp_path / "removed.nii.gz")
    data = np.arange(64, dtype=np.int16).reshape(4, 4, 4)
    defaced = nib.Nifti1Image(data, affine)
    defaced.header.set_slope_inter(1.0, 0.0)
    nib.save(defaced, tmp_path / "defaced.nii.gz")
    result = DefaceResult("sub-1/anat/sub-1_T1w.nii.gz", "T1w", "anchor", tmp_path / "o",
                          tmp_path / "defaced.nii.gz", tmp_path / "removed.nii.gz", None, None)
    spec = facemask.prepare([result], tmp_path / "face.npz", "reface")
    assert spec.removed_fraction == pytest.approx(removed.mean())
    face = facemask.load(spec)
    assert face.refaces and face.same_scaling(1.0, 0.0) and not face.same_scaling(2.0, 0.0)
    centres = affine[:3, :3] @ np.indices((4, 4, 4)).reshape(3, -1) + affine[:3, 3:4]
    s = face.sample(centres)
    assert np.array_equal(s.removed, removed.ravel())
    assert s.values is not None
    assert np.array_equal(s.values[s.removed], data.ravel()[removed.ravel()])
    assert np.isnan(s.values[~s.removed]).all()
    assert facemask.load(spec) is face  # cached per worker
    zero = facemask.prepare([result, result], tmp_path / "two.npz", "reface")
    assert not facemask.load(zero).refaces  # two images: zeros, reported by the stage


@pytest.mark.parametrize("case", ["aligned", "flipped", "offset", "oblique", "outside",
                                  "refaced"])
def test_block_shortcuts_give_the_per_pixel_answer(case: str) -> None:
    """sample_block (bounding-box skip, slicing on aligned grids) == sample per pixel."""
    rng = np.random.default_rng(7)
    removed = np.zeros((12, 10, 8), bool)
    removed[3:9, 6:, :4] = True
    removed[rng.random(removed.shape) < 0.05] = True
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [-9.0, -7.5, -8.0]
    src = MaskSource(removed, np.linalg.inv(affine))
    if case == "refaced":
        src.refaced_index = np.flatnonzero(removed)
        src.refaced_stored = rng.integers(0, 500, src.refaced_index.size).astype(float)
    face = SeriesFace([src], "reface" if case == "refaced" else "zero")
    # a frame on the grid: columns along voxel y, rows along voxel z (slice x = 5)
    origin = affine[:3, :3] @ [5, 0, 0] + affine[:3, 3]
    per_row, per_col = affine[:3, 2].copy(), affine[:3, 1].copy()
    rows, cols = 8, 10
    if case == "flipped":
        origin = affine[:3, :3] @ [5, 9, 7] + affine[:3, 3]
        per_row, per_col = -per_row, -per_col
    elif case == "offset":
        origin = origin + [0.4, 0.3, 0.0]
    elif case == "oblique":
        c, s = np.cos(0.2), np.sin(0.2)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        per_row, per_col = rot @ per_row, rot @ per_col
    elif case == "outside":
        origin = origin + [0.0, -6.0, 0.0]
    r = np.arange(rows, dtype=float)[None, :, None]
    cc = np.arange(cols, dtype=float)[None, None, :]
    pts = (origin[:, None, None] + per_row[:, None, None] * r
           + per_col[:, None, None] * cc).reshape(3, -1)
    slow = face.sample(pts)
    fast = face.sample_block(origin, per_row, per_col, rows, cols)
    assert np.array_equal(fast.removed, slow.removed)
    assert np.array_equal(fast.inside, slow.inside)
    assert fast.removed.any()
    if case == "outside":
        assert not fast.inside.all()
    if case == "refaced":
        assert fast.values is not None and slow.values is not None
        assert np.array_equal(np.nan_to_num(fast.values, nan=-1),
                              np.nan_to_num(slow.values, nan=-1))


def test_block_box_skip_respects_clipping_at_the_grid_edge() -> None:
    """A frame just outside the grid (within MARGIN) reads the edge voxels; a removed
    edge voxel must not be skipped by the bounding-box shortcut."""
    removed = np.zeros((6, 8, 8), bool)
    removed[0, 2:5, 2:5] = True
    src = MaskSource(removed, np.eye(4))
    face = SeriesFace([src], "zero")
    origin = np.array([-1.2, 0.0, 0.0])  # 1.2 voxels before x = 0, inside MARGIN
    per_row, per_col = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    r = np.arange(8, dtype=float)[None, :, None]
    cc = np.arange(8, dtype=float)[None, None, :]
    pts = (origin[:, None, None] + per_row[:, None, None] * r
           + per_col[:, None, None] * cc).reshape(3, -1)
    slow = face.sample(pts)
    fast = face.sample_block(origin, per_row, per_col, 8, 8)
    assert slow.removed.any() and slow.inside.all()
    assert np.array_equal(fast.removed, slow.removed)
    assert np.array_equal(fast.inside, slow.inside)


@pytest.mark.needs_shared
@pytest.mark.parametrize("source", ["xa30-enhanced", "philips-classic", "ge-classic"])
@pytest.mark.parametrize("encoding", ["original", "implicit", "defined-lengths"])
def test_geometry_from_bytes_equals_pydicom(shared_data: Path, tmp_path: Path, source: str,
                                           encoding: str) -> None:
    """read_layout (a walk over the encoded bytes) finds what pydicom finds, whatever
    the VR encoding and sequence length style."""
    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    from bidsdeid.dicom.geometry import read_layout

    path = {
        "xa30-enhanced": next((shared_data / "dicom/siemens_xa30_enhanced/5_anat-T1w_acq-tfl")
                              .glob("*")),
        "philips-classic": shared_data / "dicom/philips_elition_r571/1301_0050.dcm",
        "ge-classic": shared_data
        / "dicom/ge_mr750_fmri/axial_epi_fmri_interleaved_i_to_s-00001.dcm",
    }[source]
    ds = pydicom.dcmread(path)
    if encoding != "original":
        out = tmp_path / "f.dcm"
        if encoding == "implicit":
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:  # pydicom writes sequences with defined lengths when told the items' sizes
            for elem in ds.iterall():
                if elem.VR == "SQ":
                    elem.is_undefined_length = False
                    for item in elem.value:
                        item.is_undefined_length_sequence_item = False
        ds.save_as(out, enforce_file_format=True)
        path = out
        ds = pydicom.dcmread(path)
    raw = path.read_bytes()
    layout = read_layout(raw, ds.file_meta.TransferSyntaxUID.is_implicit_VR)
    fmt = pixel_format(ds, PIXEL_DATA)
    assert layout.fmt == fmt and layout.pixel_tag == PIXEL_DATA
    want = list(frames_of(ds, fmt.frames))
    assert len(layout.frames) == len(want) == int(ds.get("NumberOfFrames", 1))
    for a, b in zip(layout.frames, want):
        assert np.allclose(a.origin, b.origin) and np.allclose(a.per_row, b.per_row)
        assert np.allclose(a.per_column, b.per_column)
        assert (a.slope, a.intercept) == (b.slope, b.intercept)
