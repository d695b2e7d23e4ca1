"""bidsdeid.utils.gz: reproducible gzip that any reader opens, and one error for damage."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsdeid.utils import gz

HEAD = "nifti/niivue_register/T1_head_ext2.nii.gz"


def test_output_is_plain_gzip_without_name_or_time() -> None:
    data = bytes(range(256)) * 4000
    packed = gz.compress(data)
    assert packed[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME/FEXTRA/FCOMMENT flags
    assert packed[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.decompress(packed) == data  # zlib reads what ISA-L wrote
    assert gz.decompress(packed) == data
    assert gz.compress(data) == packed  # same bytes every time


def test_damaged_data_raise_one_error() -> None:
    packed = gz.compress(b"x" * 100_000)
    for damaged in (packed[:-4], packed[:12], packed + b"junk", b"\x1f\x8bnot gzip"):
        with pytest.raises(gz.GzipError):
            gz.decompress(damaged)
    assert gz.decompress(packed + b"\x00" * 8) == b"x" * 100_000  # zero padding, as zlib
    assert gz.decompress(packed + packed) == b"x" * 200_000  # every member


def test_the_zlib_fallback_writes_what_zlib_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gz, "_igzip", None)
    packed = gz.compress(b"abc" * 10_000)
    assert packed[4:8] == b"\x00\x00\x00\x00"
    assert gz.decompress(packed) == b"abc" * 10_000
    with pytest.raises(gz.GzipError):
        gz.decompress(packed[:-3])


@pytest.mark.needs_shared
def test_a_real_head_round_trips_voxel_for_voxel(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / HEAD
    raw = gzip.decompress(src.read_bytes())
    out = tmp_path / "head.nii.gz"
    out.write_bytes(gz.compress(raw))
    a, b = nib.load(str(src)), nib.load(str(out))
    assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    assert np.array_equal(a.affine, b.affine)
    assert out.stat().st_size < 1.05 * src.stat().st_size  # no bigger than nibabel's own
