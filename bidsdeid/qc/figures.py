"""Figures of a report: PNG bytes that are the same on every run, and data: URIs.

PNGs are written by OpenCV (no timestamp, no software tag), so two runs on the same
image give the same bytes and the shareable report is reproducible. Every figure says
whether it shows the head before defacing (``shows_face``): those never go into a
shareable report.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Figure:
    """One picture of a report."""

    name: str  # unique within an image, file-name safe
    caption: str
    png: bytes
    shows_face: bool  # made from the un-defaced image: private report only

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a grey (H x W) or RGB (H x W x 3) uint8 image."""
    import cv2

    arr = np.ascontiguousarray(image, dtype=np.uint8)
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., ::-1])  # RGB -> OpenCV's BGR
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return bytes(buf.tobytes())


def shrunk(fig: Figure, factor: float) -> Figure:
    """The same figure at ``factor`` of its size (area-averaged, re-encoded)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(fig.png, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"figure {fig.name} is not a PNG")
    h, w = img.shape[:2]
    size = (max(int(w * factor), 16), max(int(h * factor), 16))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return Figure(fig.name, fig.caption, bytes(buf.tobytes()), fig.shows_face)


def fit_budget(groups: list[list[Figure]], budget: int) -> list[list[Figure]]:
    """Shrink the largest figures (75 % at a time) until their data: URIs fit in
    ``budget`` bytes, so a participant with many images still gets a page that opens
    quickly (the reports stay under 5 MB). Deterministic: same input, same output."""
    groups = [list(g) for g in groups]

    def total() -> int:
        return sum(len(f.data_uri) for g in groups for f in g)

    for _ in range(12):
        if total() <= budget:
            break
        sizes = sorted((len(f.png), gi, fi) for gi, g in enumerate(groups)
                       for fi, f in enumerate(g))
        cutoff = sizes[len(sizes) // 2][0]  # shrink the larger half
        for size, gi, fi in sizes:
            if size >= cutoff:
                groups[gi][fi] = shrunk(groups[gi][fi], 0.75)
    return groups


def crop_box(masks: list[np.ndarray], margin: int = 4) -> tuple[slice, slice]:
    """Rows and columns holding every True pixel of ``masks`` (plus a margin)."""
    union = np.zeros(masks[0].shape, bool)
    for m in masks:
        union |= m
    if not union.any():
        return slice(None), slice(None)
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    h, w = int(np.shape(union)[0]), int(np.shape(union)[1])
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
_DATA_URI = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/]+={0,2})")


def png_holds_only_pixels(png: bytes) -> bool:
    """True if ``png`` is a well-formed PNG made only of pixel chunks (no text, no
    metadata chunk that could carry an identifier)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, seen_end = 8, False
    while pos + 12 <= len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        if kind not in PIXEL_CHUNKS:
            return False
        pos += 12 + length
        if kind == b"IEND":
            seen_end = True
            break
    return seen_end and pos == len(png)


def without_inline_pngs(page: bytes) -> tuple[bytes, int]:
    """``page`` with the base64 payload of every inline PNG that holds only pixels
    replaced by ``PNG`` (and how many were replaced).

    For a byte-level leak scan of the reports: base64 text is a random mix of letters
    cut by ``+`` and ``/``, so a short name part (3 letters) turns up in it by chance in
    a few percent of megabyte-sized pages. Images with any other chunk are left in place
    for the scan to see."""
    count = 0

    def repl(m: re.Match[bytes]) -> bytes:
        nonlocal count
        try:
            png = base64.b64decode(m.group(1), validate=True)
        except (ValueError, binascii.Error):
            return m.group(0)
        if not png_holds_only_pixels(png):
            return m.group(0)
        count += 1
        return b"data:image/png;base64,PNG"

    return _DATA_URI.sub(repl, page), count
