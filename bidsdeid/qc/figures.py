"""Figures of a report: PNG bytes that are the same on every run, and data: URIs.

PNGs are written by OpenCV (no timestamp, no software tag), so two runs on the same
image give the same bytes and the shareable report is reproducible. Every figure says
whether it shows the head before defacing (``shows_face``): those never go into a
shareable report.
"""

from __future__ import annotations

import base64
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
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return bytes(buf.tobytes())


def crop_box(masks: list[np.ndarray], margin: int = 4) -> tuple[slice, slice]:
    """Rows and columns holding every True pixel of ``masks`` (plus a margin)."""
    union = np.zeros(masks[0].shape, bool)
    for m in masks:
        union |= m
    if not union.any():
        return slice(None), slice(None)
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    h, w = union.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))
