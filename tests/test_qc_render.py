"""Renders: the head upright and facing the right way whatever the header's axis order,
the same camera and light before and after, and reproducible PNG bytes."""

# ruff: noqa: F811 - fixtures imported from test_qc_support are parameters here
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from test_qc_support import real_heads, simulate_defacing  # noqa: F401 - fixture

from bidsdeid.qc import figures, render, volume
from bidsdeid.qc.assess import surface_renders


def synthetic_head(spacing: float = 2.0, nose: bool = True, top: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid head (RAS-stored) with a nose at +y and a bump on top at +z."""
    n = 96
    ax = (np.arange(n) - (n - 1) / 2) * spacing
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    shape = (x / 70) ** 2 + (y / 85) ** 2 + (z / 80) ** 2 <= 1
    if nose:
        shape |= (np.abs(x) < 10) & (y > 80) & (y < 105) & (np.abs(z + 10) < 12)
    if top:
        shape |= (x ** 2 + y ** 2 < 15 ** 2) & (z > 75) & (z < 90)
    data = np.where(shape, 100.0, 0.0).astype(np.float32)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(n - 1) / 2 * spacing
    return data, affine


def reorient(data: np.ndarray, affine: np.ndarray, perm: tuple[int, int, int],
             flips: tuple[bool, bool, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The same head stored with axes permuted and flipped (the world is unchanged)."""
    out = np.transpose(data, perm)
    to_old = np.zeros((4, 4))
    to_old[3, 3] = 1
    for new_axis, old_axis in enumerate(perm):
        to_old[old_axis, new_axis] = 1
    flip = np.eye(4)
    for axis, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=axis)
            flip[axis, axis] = -1
            flip[axis, 3] = out.shape[axis] - 1
    return np.ascontiguousarray(out), affine @ to_old @ flip


def feature_position(perm: tuple[int, int, int], flips: tuple[bool, bool, bool],
                     feature: str) -> dict[str, tuple[float, float]]:
    """Per view, where a feature (nose or top) shows: the mean (column, row) of the pixels
    it changes, as fractions of the head's extent (0 = left / top, 1 = right / bottom)."""
    with_it = reorient(*synthetic_head(), perm, flips)
    without = reorient(*synthetic_head(**{feature: False}), perm, flips)
    grid = volume.RasGrid.covering(with_it[0].shape, with_it[1])
    masks = []
    for data, affine in (with_it, without):
        sm = volume.smooth(volume.resample(data, affine, grid))
        masks.append(volume.head_mask(sm, 50.0))
    points = [render.surface_points(m, grid) for m in masks]
    camera = render.Camera.around(points[0], grid.spacing)
    out = {}
    for view in render.VIEWS:
        a = render.render_view(points[0], camera, view)
        b = render.render_view(points[1], camera, view)
        changed = a.foreground & ~(b.foreground & (np.abs(a.depth - b.depth) < 0.5))
        rows, cols = np.nonzero(changed)
        fr, fc = np.nonzero(a.foreground)
        out[view.name] = ((cols.mean() - fc.min()) / np.ptp(fc), (rows.mean() - fr.min())
                          / np.ptp(fr))
    return out


ORIENTATIONS = [((0, 1, 2), (False, False, False)), ((0, 1, 2), (True, False, False)),
                ((2, 0, 1), (False, True, True)), ((1, 2, 0), (True, True, False))]


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS)
def test_views_face_the_right_way_whatever_the_axis_order(
        perm: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> None:
    nose = feature_position(perm, flips, "nose")
    assert 0.4 < nose["front"][0] < 0.6  # the nose in the middle of the front view
    assert nose["right"][0] > 0.85 and nose["left"][0] < 0.15  # pointing out in profile
    assert 0.6 < nose["right45"][0] < 0.95 and 0.05 < nose["left45"][0] < 0.4
    assert all(0.4 < row < 0.75 for _, row in nose.values())  # a bit below the middle
    top = feature_position(perm, flips, "top")
    assert all(row < 0.1 for _, row in top.values())  # the crown at the top


def test_same_renders_for_every_axis_order() -> None:
    base = surface_renders(synthetic_head(), None).renders["before"]
    for perm, flips in ORIENTATIONS[1:]:
        other = surface_renders(reorient(*synthetic_head(), perm, flips), None)
        for view, shot in other.renders["before"].items():
            same = shot.foreground == base[view].foreground
            assert same.mean() > 0.995, view


def test_fast_resampling_matches_the_general_one() -> None:
    data, affine = reorient(*synthetic_head(), (2, 0, 1), (True, False, True))
    data = data + np.random.default_rng(0).normal(0, 5, data.shape).astype(np.float32)
    grid = volume.RasGrid.covering(data.shape, affine)
    assert volume._axis_aligned(affine) is not None
    fast = volume.resample(data, affine, grid)
    general = volume.resample(data, affine, grid, allow_fast=False)
    assert np.abs(fast - general).max() < 1e-3
    turned = np.eye(4)
    turned[:2, :2] = [[np.cos(0.01), -np.sin(0.01)], [np.sin(0.01), np.cos(0.01)]]
    assert volume._axis_aligned(turned @ affine) is None  # an oblique image: general path


@pytest.mark.needs_shared
def test_before_and_after_share_camera_and_light(real_heads: dict[str, Path],
                                                 tmp_path: Path) -> None:
    res = simulate_defacing(real_heads["niivue_T1w"], tmp_path, rel_path="sub-01/anat/x.nii.gz")
    before, after = volume.load_image(res.original), volume.load_image(res.defaced)
    shots = surface_renders(before, after)
    for view in (v.name for v in render.VIEWS):
        b, a = shots.renders["before"][view], shots.renders["after"][view]
        assert b.image.shape == a.image.shape
        assert not (a.foreground & ~b.foreground).any()  # defacing only takes away
        same = b.foreground & a.foreground & (np.abs(a.depth - b.depth) < 1e-3)
        untouched = ndi.binary_erosion(same, np.ones((3, 3), bool), iterations=6,
                                        border_value=0)
        # where defacing did not change the surface nearby, the pixels are identical
        assert untouched.sum() > 0.3 * b.foreground.sum(), view
        assert np.array_equal(a.image[untouched], b.image[untouched]), view
        assert (a.image != b.image).any()  # and it did change something in every view


@pytest.mark.needs_shared
def test_pngs_are_reproducible(real_heads: dict[str, Path]) -> None:
    img = volume.load_image(real_heads["niivue_T1w"])
    one = surface_renders(img, None).renders["before"]["front"]
    two = surface_renders(img, None).renders["before"]["front"]
    assert figures.encode_png(one.image) == figures.encode_png(two.image)
    assert np.std(one.image[one.foreground]) > 10  # shaded, not a flat silhouette


@pytest.mark.parametrize("oblique", [False, True])
def test_slabs_in_threads_give_the_same_grid(oblique: bool) -> None:
    """Resampling and blurring in slabs side by side equals doing it whole, bit for bit
    (axis-aligned and oblique images; slab edges inside the head)."""
    rng = np.random.default_rng(7)
    data = rng.random((60, 70, 50), dtype=np.float32) * 100
    affine = np.diag([1.1, -0.9, 1.3, 1.0])
    if oblique:
        t = 0.3
        rot = np.array([[np.cos(t), -np.sin(t), 0, 0], [np.sin(t), np.cos(t), 0, 0],
                        [0, 0, 1, 0], [0, 0, 0, 1]])
        affine = rot @ affine
    grid = volume.RasGrid.covering(data.shape, affine, max_voxels=80)
    whole = volume.resample(data, affine, grid)
    for threads in (2, 3):
        assert np.array_equal(volume.resample(data, affine, grid, threads=threads), whole)
        assert np.array_equal(volume.smooth(whole, threads), volume.smooth(whole))
    assert len(volume._slabs(grid.shape[0], 3)) > 1  # the grid was really cut
