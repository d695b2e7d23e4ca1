"""Write the defaced pixel data element of one file, one frame at a time.

The byte engine hands the writer the source's pixel data element as a
:class:`~bidsdeid.dicom.rawengine.Range`. For a series that must be defaced,
:func:`plan` reads that element's header and decides how it is written:

* native (uncompressed) pixel data: the element header is kept, and each frame is
  read from the source, defaced (:class:`~bidsdeid.dicom.pixels.FileFace`) and
  written; bytes after the last frame (a pad byte) are copied;
* encapsulated (compressed) pixel data: if pydicom has a decoder for the transfer
  syntax, frames are decoded one at a time (:func:`pydicom.pixels.iter_pixels`),
  defaced and written as native pixel data, and the file is written in Explicit VR
  Little Endian (the caller rebuilds the file meta and drops the extended offset
  table); without a decoder the file is refused (:class:`PixelRefused`).

Only one frame is in memory at a time, whatever the file size.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from pydicom.pixels import get_decoder, iter_pixels
from pydicom.uid import UID

from bidsdeid.dicom.facemask import SeriesFace
from bidsdeid.dicom.geometry import Layout
from bidsdeid.dicom.pixels import FileFace, PixelRefused
from bidsdeid.dicom.rawengine import LONG_VRS, UNDEF, Range

EXTENDED_OFFSET_TAGS = (0x7FE00001, 0x7FE00002)
_BLOCK = 1 << 20


def copy_bytes(fh: IO[bytes], out: IO[bytes], length: int, shrank: Exception) -> None:
    """Copy ``length`` bytes from where ``fh`` stands to ``out`` in 1 MiB blocks; raise
    ``shrank`` if the source ends first."""
    while length > 0:
        block = fh.read(min(_BLOCK, length))
        if not block:
            raise shrank
        out.write(block)
        length -= len(block)


def decoder_available(transfer_syntax: str) -> bool:
    """True if pydicom can decode pixel data of this transfer syntax here."""
    try:
        return bool(get_decoder(UID(transfer_syntax)).is_available)
    except NotImplementedError:
        return False


def refuse_undecodable(transfer_syntax: str) -> None:
    if not decoder_available(transfer_syntax):
        name = UID(transfer_syntax).name if UID(transfer_syntax).is_transfer_syntax \
            else "an unknown transfer syntax"
        raise PixelRefused(f"compressed as {name}, which this installation cannot decode "
                           "to deface (install a pydicom decoder plugin, e.g. python-gdcm "
                           "or pylibjpeg)")


@dataclass
class PixelPlan:
    """How one file's pixel data element is written (see the module docstring)."""

    face: FileFace
    src: Path
    tag: int
    header: bytes  # element header as written
    value_offset: int  # native: where the source's frames start
    value_length: int  # native: the source value length
    decoded: bool  # True: frames come from the decoder, the file becomes native

    def write(self, fh: IO[bytes], out: IO[bytes]) -> None:
        out.write(self.header)
        fmt = self.face.fmt
        if self.decoded:
            n = 0
            for k, frame in enumerate(_decoded_frames(self.src)):
                if k >= fmt.frames:
                    raise PixelRefused("the decoder gave more frames than NumberOfFrames")
                arr = np.ascontiguousarray(frame).reshape(-1)
                out.write(self.face.deface(k, arr.astype(fmt.dtype, copy=False)).tobytes())
                n += 1
            if n != fmt.frames:
                raise PixelRefused("the decoder gave fewer frames than NumberOfFrames")
            if (fmt.frames * fmt.frame_bytes) % 2:
                out.write(b"\x00")
            return
        fh.seek(self.value_offset)
        for k in range(fmt.frames):
            out.write(self.face.deface_bytes(k, fh.read(fmt.frame_bytes)))
        copy_bytes(fh, out, self.value_length - fmt.frames * fmt.frame_bytes,
                   PixelRefused("the source file shrank while it was being copied"))


def _decoded_frames(src: Path) -> Iterator[np.ndarray]:
    """The frames of ``src`` as pydicom decodes them, one at a time (stored values)."""
    frames = iter_pixels(src, raw=True)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as exc:  # any decoder failure: refuse, never guess
            raise PixelRefused(f"the compressed pixel data could not be decoded "
                               f"({type(exc).__name__})") from exc
        yield frame


def plan(src: Path, fh: IO[bytes], rng: Range, implicit: bool, transfer_syntax: str,
         face: SeriesFace, layout: Layout) -> PixelPlan:
    """Plan the pixel element at ``rng`` of ``src`` (``layout``: its format and frame
    geometry, :func:`bidsdeid.dicom.geometry.read_layout`)."""
    fh.seek(rng.offset)
    head = fh.read(8)
    if len(head) != 8:
        raise PixelRefused("truncated pixel data element")
    group, elem = struct.unpack("<HH", head[:4])
    tag = (group << 16) | elem
    if implicit:
        length, hdr = struct.unpack("<I", head[4:8])[0], head
    elif head[4:6].decode("latin-1") in LONG_VRS:
        extra = fh.read(4)
        length, hdr = struct.unpack("<I", extra)[0], head + extra
    else:
        length, hdr = struct.unpack("<H", head[6:8])[0], head
    if tag != layout.pixel_tag:
        raise PixelRefused("the pixel data element is not where the header ends")
    if length == UNDEF:  # encapsulated
        refuse_undecodable(transfer_syntax)
        face_of = FileFace(face, layout.fmt, layout.frames)
        total = face_of.fmt.frames * face_of.fmt.frame_bytes
        vr = b"OW" if face_of.fmt.bits_allocated > 8 else b"OB"
        new = struct.pack("<HH2sHI", group, elem, vr, 0, total + total % 2)
        return PixelPlan(face_of, src, tag, new, 0, 0, True)
    face_of = FileFace(face, layout.fmt, layout.frames)
    if length < face_of.fmt.frames * face_of.fmt.frame_bytes:
        raise PixelRefused("the pixel data is shorter than its frames")
    return PixelPlan(face_of, src, tag, hdr, rng.offset + len(hdr), length, False)
