"""Read a staged NIfTI once, and write its defaced version with the very same header.

The defaced image keeps every header byte (dtype, affine, scaling, extensions) of the
staged, already scrubbed file: only the voxel bytes change. The file is gzipped with
:func:`bidsdeid.utils.gz.compress` (mtime 0), so two runs write identical bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsdeid.deface.volume import Volume
from bidsdeid.errors import DataError
from bidsdeid.utils import gz
from bidsdeid.utils.atomic import write_bytes


def _vox_offset(raw: bytes) -> int:
    """Where the voxels start, read from the bytes (nibabel's in-memory header may say 0)."""
    order = "<" if int.from_bytes(raw[:4], "little") in (348, 540) else ">"
    if struct.unpack(order + "i", raw[:4])[0] == 348:
        return max(int(struct.unpack(order + "f", raw[108:112])[0]), 352)
    return max(int(struct.unpack(order + "q", raw[168:176])[0]), 544)


@dataclass
class RawNifti:
    """A NIfTI file held in memory as its bytes, with a view of its stored voxels."""

    path: Path
    raw: bytes
    vox_offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    slope: float
    inter: float
    affine: np.ndarray

    @classmethod
    def read(cls, path: Path) -> RawNifti:
        try:
            data = path.read_bytes()
            raw = gz.decompress(data) if gz.is_gzip(data) else data
            img = nib.Nifti1Image.from_bytes(raw) if raw[344:348] in (b"n+1\x00", b"ni1\x00") \
                else nib.Nifti2Image.from_bytes(raw)
        except (OSError, ValueError,
                nib.filebasedimages.ImageFileError) as exc:
            raise DataError(f"{path.name}: not a readable NIfTI image ({exc})") from exc
        hdr = img.header
        # nibabel moves the scaling from the header into the array proxy on load
        slope = getattr(img.dataobj, "slope", None)
        inter = getattr(img.dataobj, "inter", None)
        return cls(path=path, raw=raw, vox_offset=_vox_offset(raw),
                   dtype=hdr.get_data_dtype(), shape=tuple(int(s) for s in img.shape),
                   slope=1.0 if slope is None or not np.isfinite(slope) or slope == 0
                   else float(slope),
                   inter=0.0 if inter is None or not np.isfinite(inter) else float(inter),
                   affine=img.affine.astype(float))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    def stored(self) -> np.ndarray:
        """The stored voxel values (unscaled, on-disk dtype), as a writable copy."""
        arr = np.frombuffer(self.raw, dtype=self.dtype, count=self.n_voxels,
                            offset=self.vox_offset)
        return arr.reshape(self.shape, order="F").copy()

    def to_stored(self, values: np.ndarray) -> np.ndarray:
        """Physical values -> stored values of this file's dtype (rounded, clipped)."""
        v = (np.asarray(values, dtype=np.float64) - self.inter) / self.slope
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            v = np.clip(np.rint(v), info.min, info.max)
        return v.astype(self.dtype)

    def volume(self) -> Volume:
        """The first 3D volume in physical units, for registration."""
        arr = self.stored()
        if arr.ndim > 3:
            arr = arr.reshape(arr.shape[:3] + (-1,))[..., 0]
        phys = arr.astype(np.float32) * np.float32(self.slope) + np.float32(self.inter)
        return Volume(np.nan_to_num(phys, copy=False), self.affine)

    def encode(self, stored: np.ndarray) -> bytes:
        """This file's bytes with the voxels replaced (header and extensions untouched)."""
        body = np.asarray(stored, dtype=self.dtype).tobytes(order="F")
        end = self.vox_offset + len(body)
        return self.raw[: self.vox_offset] + body + self.raw[end:]

    def write(self, path: Path, stored: np.ndarray) -> None:
        data = self.encode(stored)
        write_bytes(path, gz.compress(data) if path.name.endswith(".gz") else data)


def write_mask(path: Path, mask: np.ndarray, like: RawNifti) -> None:
    """A uint8 mask on ``like``'s grid (its affine and codes; no other header field)."""
    img = nib.Nifti1Image(mask.astype(np.uint8), like.affine)
    img.set_qform(like.affine, code=1)
    img.set_sform(like.affine, code=1)
    img.header.set_xyzt_units("mm")
    data = img.to_bytes()
    write_bytes(path, gz.compress(data) if path.name.endswith(".gz") else data)
