"""Clear the text of a NIfTI header and drop its extensions, without touching voxels.

dcm2niix writes acquisition times into ``descrip`` and ImageComments into
``aux_file``; other converters use ``db_name``, ``intent_name`` and header
extensions (JSON, DICOM, AFNI), and the unused ANALYZE fields can hold anything. All
of them are cleared here: the header is parsed with nibabel, every text field emptied
and the unused numbers zeroed, ``vox_offset`` set to the end of the
header (352 bytes for NIfTI-1, 544 for NIfTI-2) and the extension flag zeroed; the
voxel bytes are copied as they are, so data, scaling and affine equal the
converter's own output exactly. The result is gzipped with mtime 0
(:func:`bidsdeid.utils.gz.compress`), so reruns are byte-identical.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from nibabel.nifti1 import Nifti1Header
from nibabel.nifti2 import Nifti2Header

from bidsdeid.utils import gz
from bidsdeid.utils.atomic import write_bytes

TEXT_FIELDS = ("descrip", "aux_file", "db_name", "intent_name", "data_type", "unused_str")
"""Every text field of either header: the four NIfTI text fields, and the unused
ANALYZE ``data_type`` (NIfTI-1) and ``unused_str`` (NIfTI-2), which readers ignore and
any program may fill."""
UNUSED_NUMBERS = ("extents", "session_error", "glmax", "glmin")
"""NIfTI-1's unused ANALYZE numbers: zeroed, so nothing rides along in them either."""


class NiftiError(ValueError):
    """The bytes are not a single-file NIfTI image we can rewrite safely."""


def read_image_bytes(path: Path) -> bytes:
    """The bytes of a ``.nii`` or ``.nii.gz`` file (decompressed)."""
    data = Path(path).read_bytes()
    if gz.is_gzip(data):
        try:
            return gz.decompress(data)
        except gz.GzipError as exc:  # a cut or damaged file
            raise NiftiError("damaged gzip data") from exc
    return data


def _header_class(raw: bytes) -> tuple[type[Nifti1Header], int]:
    if len(raw) < 352:
        raise NiftiError("file too short for a NIfTI header")
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size == 348:
            return Nifti1Header, 348
        if size == 540:
            return Nifti2Header, 540
    raise NiftiError("not a NIfTI-1 or NIfTI-2 header")


def scrub_bytes(raw: bytes) -> bytes:
    """The image with text fields cleared and no extensions (uncompressed bytes)."""
    cls, size = _header_class(raw)
    hdr = cls.from_fileobj(io.BytesIO(raw), check=False)
    magic = bytes(hdr["magic"]).rstrip(b"\x00")
    if magic not in (b"n+1", b"n+2"):
        raise NiftiError("not a single-file NIfTI (.nii) image")
    offset = int(hdr["vox_offset"])
    shape = hdr.get_data_shape()
    n_bytes = int(np.prod(shape, dtype=np.int64)) * int(hdr["bitpix"]) // 8
    if offset < size + 4 or offset + n_bytes > len(raw):
        raise NiftiError("voxel data offset or length does not fit the file")
    for name in TEXT_FIELDS:
        if name in hdr:
            hdr[name] = b""
    for name in UNUSED_NUMBERS:
        if name in hdr:
            hdr[name] = 0
    new_offset = size + 4
    hdr["vox_offset"] = new_offset
    return hdr.binaryblock + b"\x00\x00\x00\x00" + raw[offset:offset + n_bytes]


def header_text(raw: bytes) -> dict[str, str]:
    """The text fields of a NIfTI header (for identifier collection and tests)."""
    cls, _size = _header_class(raw)
    hdr = cls.from_fileobj(io.BytesIO(raw), check=False)
    out = {}
    for name in TEXT_FIELDS:
        if name in hdr:
            out[name] = bytes(hdr[name]).split(b"\x00")[0].decode("latin-1", "replace")
    return out


def write_scrubbed(src: Path, dst: Path) -> None:
    """Scrub ``src`` (.nii or .nii.gz) and write ``dst`` (.nii.gz) atomically."""
    write_bytes(dst, gz.compress(scrub_bytes(read_image_bytes(src))))
