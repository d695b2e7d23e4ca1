"""Defaced files keep their header bytes, dtype and scaling; gzip output is reproducible."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from bidsdeid.deface.nifti_io import RawNifti, write_mask


def _image(tmp_path, dtype, slope=None, inter=None, shape=(6, 7, 5)):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 100, size=shape).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([-1.2, 1.0, 2.0, 1.0]))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"keep me\x00"))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    path = tmp_path / "img.nii.gz"
    nib.save(img, path)
    return path, data


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, ">i2"])
def test_only_voxels_change(tmp_path, dtype) -> None:
    path, data = _image(tmp_path, np.dtype(dtype))
    raw = RawNifti.read(path)
    stored = raw.stored()
    stored[:2] = raw.to_stored(np.zeros(1))[0]
    out = tmp_path / "out.nii.gz"
    raw.write(out, stored)
    before, after = gzip.decompress(path.read_bytes()), gzip.decompress(out.read_bytes())
    assert before[: raw.vox_offset] == after[: raw.vox_offset]  # header + extensions
    got = nib.load(out)
    assert got.get_data_dtype() == nib.load(path).get_data_dtype()
    assert np.array_equal(got.affine, nib.load(path).affine)
    arr = np.asanyarray(got.dataobj)
    assert (arr[:2] == 0).all() and np.array_equal(arr[2:], data[2:])
    assert out.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    again = tmp_path / "again.nii.gz"
    raw.write(again, stored)
    assert again.read_bytes() == out.read_bytes()


def test_scaled_images_are_zeroed_in_physical_units(tmp_path) -> None:
    path, _ = _image(tmp_path, np.int16, slope=2.0, inter=-10.0)
    raw = RawNifti.read(path)
    vol = raw.volume()
    assert np.allclose(vol.data, np.asanyarray(nib.load(path).dataobj))
    stored = raw.stored()
    stored[0] = raw.to_stored(np.zeros(1))[0]
    out = tmp_path / "out.nii.gz"
    raw.write(out, stored)
    phys = np.asanyarray(nib.load(out).dataobj)
    assert (phys[0] == 0).all()


def test_4d_image_volume_and_mask(tmp_path) -> None:
    path, data = _image(tmp_path, np.int16, shape=(6, 7, 5, 3))
    raw = RawNifti.read(path)
    assert raw.volume().shape == (6, 7, 5)
    assert np.array_equal(raw.volume().data, data[..., 0])
    mask = np.zeros((6, 7, 5), bool)
    mask[1:3] = True
    write_mask(tmp_path / "m.nii.gz", mask, raw)
    m = nib.load(tmp_path / "m.nii.gz")
    assert m.get_data_dtype() == np.uint8 and np.allclose(m.affine, raw.affine)
    assert np.array_equal(np.asanyarray(m.dataobj).astype(bool), mask)
