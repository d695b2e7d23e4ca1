"""Is a face still visible? Two independent looks at the surface renders.

1. OpenCV's Haar cascades (the files ship in the opencv-python-headless wheel): the
   frontal-face cascades on the front view, the profile cascade on the two 45 degree
   views (mirrored for the right side: the cascade knows one side only). Its strength
   is the number of overlapping raw detections (OpenCV's "neighbours"): a face gives
   dozens to hundreds, a texture that happens to look like one gives a handful.
   Renders are scaled so the head is :data:`HEAD_WIDTH_PX` wide first, so the count
   means the same for every scanner and field of view.
2. Geometry: the nose tip is a peak of the front depth map that stands clear of the
   surface around it in every direction (an adult nose projects 20-30 mm from the
   cheeks, 15 mm or more from the lip and the nasion). A cut surface has ridges
   (where it meets the forehead) but no such all-round peak.

Before defacing, a face should be found: if neither look finds one, the check cannot
show that it works on this head and says "inconclusive". After defacing, a nose, a face
in profile, or the frontal pattern with a second sign fails the image; a weak sign asks
a human to look ("review"). The frontal cascade alone decides nothing after defacing:
it keys on brows and orbit roofs, which defacing keeps by design (see
:attr:`FaceEvidence.face`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from bidsdeid.qc.render import SurfaceRender

HEAD_WIDTH_PX = 160
"""Width of the head in the front view after scaling, in pixels (a face ~100 px)."""

HAAR_FACE = 30
"""Raw detections that make a face: whole adult faces in renders give 55 to 270."""
HAAR_WEAK = 10
"""Raw detections that need a human look (cut surfaces give a handful, up to ~25 for
odd ones)."""

PROFILE_KEPT = 0.2
"""Part of the profile count before defacing that, kept after it, backs the frontal
pattern as a second sign of a face (see :meth:`FaceEvidence.face_after`)."""

NOSE_FACE_MM = 12.0
"""All-round prominence of a peak that makes a nose (adults 15-25 mm)."""
NOSE_WEAK_MM = 9.0
NOSE_RING_MM = (15.0, 35.0)
"""The peak is compared with the surface this far around it (mm), in 8 directions."""
NOSE_MIN_RADIUS_MM = 5.0
"""A nose is a mound, not a rim: 8 mm below its tip it is at least this thick (as the
radius of the largest disc that fits; adult noses 7-12 mm). Thin ridges a cut leaves
(skin rims, the edge of a shell) are thinner."""
NOSE_BODY_DROP_MM = 8.0

# Which cascade looks at which view; "mirror" flips the image first.
CASCADES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "front": (("frontal", "haarcascade_frontalface_default.xml", False),
              ("frontal-alt2", "haarcascade_frontalface_alt2.xml", False)),
    "left45": (("profile", "haarcascade_profileface.xml", False),),
    "right45": (("profile", "haarcascade_profileface.xml", True),),
}


@dataclass
class Detection:
    """One face-like find on one render: which view, which detector, how strong."""

    view: str
    detector: str
    score: float  # Haar: raw detections (neighbours); nose: prominence in mm
    box: tuple[int, int, int, int] | None = None  # x, y, w, h in render pixels

    def to_dict(self) -> dict[str, object]:
        return {"view": self.view, "detector": self.detector, "score": round(self.score, 1),
                "box": list(self.box) if self.box else None}


@dataclass
class FaceEvidence:
    """Everything both looks found on one set of renders (before or after defacing)."""

    haar: dict[str, float] = field(default_factory=dict)  # "view/detector" -> best score
    nose_mm: float = 0.0
    detections: list[Detection] = field(default_factory=list)  # strong enough to show

    def _best(self, prefix: str) -> float:
        return max((v for k, v in self.haar.items() if k.split("/")[1].startswith(prefix)),
                   default=0.0)

    @property
    def seen(self) -> bool:
        """Any strong sign of a face (used on the renders before defacing)."""
        return (max(self.haar.values(), default=0.0) >= HAAR_FACE
                or self.nose_mm >= NOSE_FACE_MM)

    @property
    def face(self) -> bool:
        """:meth:`face_after` with no "before" to compare with."""
        return self.face_after(None)

    def face_after(self, before: FaceEvidence | None) -> bool:
        """A face after defacing: a nose, a face in profile, or the frontal pattern backed
        by a second sign. The frontal cascade alone keys on the brows and orbit roofs,
        which every defacing keeps above its cut (pydeface, afni_refacer): on real
        defaced heads it still fires (about half its count before), so alone it is
        shown but decides nothing. A profile count backs it when it is at least
        :data:`HAAR_WEAK` and, with the head's own face seen ``before``, at least
        :data:`PROFILE_KEPT` of the profile count there: the cut surface of a real
        defacing keeps a small part of it (the orbits and the oral cavity it opens make
        a face-like pattern: 3 to 13 % on the shared heads), a defacing that missed the
        face keeps a third or more."""
        profile, frontal = self._best("profile"), self._best("frontal")
        second = HAAR_WEAK if before is None else max(HAAR_WEAK,
                                                      PROFILE_KEPT * before._best("profile"))
        return (self.nose_mm >= NOSE_FACE_MM or profile >= HAAR_FACE
                or (frontal >= HAAR_FACE and (self.nose_mm >= NOSE_WEAK_MM
                                              or profile >= second)))

    @property
    def weak(self) -> bool:
        return self._best("profile") >= HAAR_WEAK or self.nose_mm >= NOSE_WEAK_MM

    def summary(self) -> str:
        parts = [f"{k} {v:.0f}" for k, v in sorted(self.haar.items())]
        parts.append(f"nose {self.nose_mm:.1f} mm")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {"seen": self.seen, "face": self.face, "weak": self.weak, "nose_mm": round(self.nose_mm, 1),
                "detectors": {k: round(v, 1) for k, v in sorted(self.haar.items())},
                "detections": [d.to_dict() for d in self.detections]}


@dataclass
class FaceCheck:
    """The verdict for one image: pass | fail | review | inconclusive | not defaced."""

    status: str
    message: str
    before: FaceEvidence | None
    after: FaceEvidence | None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "message": self.message,
                "before": self.before.to_dict() if self.before else None,
                "after": self.after.to_dict() if self.after else None}


HaarResult = tuple[dict[str, float], list[Detection]]
"""Best raw-detection count per "view/detector", and the detections worth showing."""
NoseResult = tuple[float, tuple[int, int] | None]
"""Nose prominence in mm, and where on the front render (row, col)."""


@cache
def _cascade(filename: str):  # type: ignore[no-untyped-def]
    import cv2

    path = Path(cv2.data.haarcascades) / filename  # type: ignore[attr-defined]
    clf = cv2.CascadeClassifier(str(path))
    if clf.empty():
        raise RuntimeError(f"OpenCV Haar cascade {filename} is missing from the cv2 wheel "
                           "(opencv-python-headless 4.x ships it)")
    return clf


def load_detectors() -> None:
    """Load every cascade now (tens of milliseconds; QC does it in its second thread while
    the image is resampled)."""
    for cascades in CASCADES.values():
        for _name, filename, _mirror in cascades:
            _cascade(filename)


_DETECTING = threading.Lock()
"""A classifier keeps per-image state while it detects, so one detection runs at a
time (QC runs the detectors in a thread beside the rest of its work)."""


def _scale_for(front: SurfaceRender) -> float:
    cols = np.flatnonzero(front.foreground.any(axis=0))
    width = (cols[-1] - cols[0] + 1) if cols.size else front.image.shape[1]
    return HEAD_WIDTH_PX / max(int(width), 1)


def haar_scores(renders: dict[str, SurfaceRender], scale: float) -> HaarResult:
    """Best raw-detection count per (view, detector), and the detections worth showing."""
    import cv2

    scores: dict[str, float] = {}
    found: list[Detection] = []
    for view, cascades in CASCADES.items():
        if view not in renders:
            continue
        img = renders[view].image
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        min_side = int(0.3 * HEAD_WIDTH_PX)
        for name, filename, mirror in cascades:
            probe = cv2.flip(big, 1) if mirror else big
            with _DETECTING:
                rects, counts = _cascade(filename).detectMultiScale2(
                    probe, scaleFactor=1.05, minNeighbors=1, minSize=(min_side, min_side))
            best = 0.0
            for rect, count in zip(np.asarray(rects).reshape(-1, 4),
                                   np.asarray(counts).reshape(-1)):
                x, y, w, h = (int(v) for v in rect)
                if mirror:
                    x = probe.shape[1] - x - w
                box = tuple(round(v / scale) for v in (x, y, w, h))
                best = max(best, float(count))
                if count >= HAAR_WEAK:
                    found.append(Detection(view, name, float(count), box))  # type: ignore[arg-type]
            key = f"{view}/{name}"
            scores[key] = max(scores.get(key, 0.0), best)
    return scores, found


def nose_prominence(front: SurfaceRender) -> NoseResult:
    """The strongest all-round peak of the front depth map: for each local maximum whose
    ring (NOSE_RING_MM) lies on the head, the smallest of its 8 drops to the median
    depth of each sector of the ring. Returns (mm, (row, col))."""
    depth, fg, px = front.depth, front.foreground, front.pixel
    if not fg.any():
        return 0.0, None
    filled = np.where(fg, depth, np.float32(-1e6))
    window = round(15.0 / px) | 1
    peaks = fg & (filled >= ndi.maximum_filter(filled, size=window))
    r_in, r_out = NOSE_RING_MM
    reach = int(np.ceil(r_out / px))
    dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1] * px
    radius = np.hypot(dy, dx)
    disk = radius <= r_out
    ring = (radius >= r_in) & disk
    inside = ndi.binary_erosion(fg, structure=disk, border_value=0)
    offsets = np.argwhere(ring) - reach
    angle = np.arctan2(-dy[ring], dx[ring])
    sector = ((angle + np.pi) / (2 * np.pi) * 8).astype(int) % 8
    candidates = np.argwhere(peaks & inside)
    if candidates.size == 0:
        return 0.0, None
    rows = candidates[:, :1] + offsets[None, :, 0]
    cols = candidates[:, 1:] + offsets[None, :, 1]
    values = depth[rows, cols]  # candidates x ring pixels
    sector_medians = np.stack([np.median(values[:, sector == s], axis=1) for s in range(8)],
                              axis=1)
    drops = depth[candidates[:, 0], candidates[:, 1]][:, None] - sector_medians
    prominence = drops.min(axis=1)
    for k in np.argsort(-prominence, kind="stable"):
        if prominence[k] <= 0:
            break
        where = (int(candidates[k, 0]), int(candidates[k, 1]))
        if _body_radius(depth, fg, where, px) >= NOSE_MIN_RADIUS_MM:
            return float(prominence[k]), where
    return 0.0, None


def _body_radius(depth: np.ndarray, fg: np.ndarray, where: tuple[int, int],
                 px: float) -> float:
    """Radius (mm) of the largest disc inside the part of the surface that is within
    NOSE_BODY_DROP_MM of the peak at ``where`` and connected to it."""
    r, c = where
    body = fg & (np.nan_to_num(depth, nan=-np.inf) >= depth[r, c] - NOSE_BODY_DROP_MM)
    labels, _ = ndi.label(body)
    mine = labels == labels[r, c]
    return float(ndi.distance_transform_edt(mine).max() * px)


def combine(front: SurfaceRender, haar: HaarResult, nose: NoseResult) -> FaceEvidence:
    """The evidence from the two looks on one set of renders (:func:`haar_scores`, and
    :func:`nose_prominence` of the ``front`` view), which QC computes in two threads;
    both at the scale of the "before" front view (:func:`scale_of`), so before and after
    are looked at the same size."""
    scores, found = haar
    prominence, where = nose
    found = list(found)
    if prominence >= NOSE_WEAK_MM and where is not None:
        r, c = where
        half = round(15 / front.pixel)
        found.append(Detection("front", "nose", prominence,
                               (c - half, r - half, 2 * half, 2 * half)))
    return FaceEvidence(scores, prominence, found)


def scale_of(renders: dict[str, SurfaceRender]) -> float:
    front = renders.get("front")
    return _scale_for(front) if front is not None else 1.0


def judge(before: FaceEvidence | None, after: FaceEvidence | None) -> FaceCheck:
    """The verdict from the evidence before and after defacing (see the module doc)."""
    if after is None:
        if before is not None and before.seen:
            return FaceCheck("not defaced", "a face is visible (image not defaced)", before,
                             None)
        return FaceCheck("not defaced", "image not defaced", before, None)
    if after.face_after(before):
        return FaceCheck("fail", f"face visible after defacing ({after.summary()})",
                         before, after)
    if before is None or not before.seen:
        return FaceCheck("inconclusive", "no face found before defacing either, so the "
                         "detector proves nothing on this image: look at the renders",
                         before, after)
    if after.weak:
        return FaceCheck("review", f"weak face-like pattern after defacing "
                         f"({after.summary()}): look at the renders", before, after)
    return FaceCheck("pass", "face found before defacing, none after", before, after)
