"""Figures: reproducible PNG bytes and a size budget that always converges."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

from bidsdeid.qc import figures


def test_png_bytes_are_reproducible_and_rgb_order_kept() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255  # red
    png = figures.encode_png(rgb)
    assert png == figures.encode_png(rgb.copy())
    import cv2

    back = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert back[0, 0].tolist() == [0, 0, 255]  # OpenCV reads BGR: red stayed red


def test_budget_shrinks_the_largest_figures_until_they_fit() -> None:
    rng = np.random.default_rng(0)
    noise = [figures.Figure(f"f{i}", "noise", figures.encode_png(
        rng.integers(0, 256, (300, 300), dtype=np.uint8)), False) for i in range(6)]
    before = sum(len(f.data_uri) for f in noise)
    fitted = figures.fit_budget([noise[:3], noise[3:]], before // 4)
    assert [len(g) for g in fitted] == [3, 3]
    assert sum(len(f.data_uri) for g in fitted for f in g) <= before // 4
    assert [f.name for g in fitted for f in g] == [f.name for f in noise]
    assert figures.fit_budget([noise], before * 2) == [noise]  # within budget: untouched


def test_inline_pngs_can_be_set_aside_for_a_leak_scan() -> None:
    png = figures.encode_png(np.full((20, 20), 128, np.uint8))
    assert figures.png_holds_only_pixels(png)
    # a tEXt chunk (where a name could hide) keeps the image in the scan
    text = struct.pack(">I", 4) + b"tEXtJohn" + struct.pack(">I", zlib.crc32(b"tEXtJohn"))
    tagged = png[:33] + text + png[33:]
    assert not figures.png_holds_only_pixels(tagged)
    page = (b'<img src="data:image/png;base64,' + base64.b64encode(png) + b'"><img src="'
            b'data:image/png;base64,' + base64.b64encode(tagged) + b'">')
    stripped, n = figures.without_inline_pngs(page)
    assert n == 1
    assert base64.b64encode(png) not in stripped and base64.b64encode(tagged) in stripped
