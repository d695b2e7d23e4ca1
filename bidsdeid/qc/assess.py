"""QC of one anatomical image: renders, face check, metrics and figures.

Input is what defacing left (:class:`~bidsdeid.deface.result.DefaceResult`) or, when
an image was not defaced, the image alone. Output is an :class:`ImageQC`: the verdict,
the numbers, and the figures of both reports (each figure knows whether it shows the
face, so the shareable report can leave those out).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bidsdeid.deface.result import DefaceResult, GateResult
from bidsdeid.qc import face, figures, metrics, render, slices, volume
from bidsdeid.qc.figures import Figure

FACE_GATE = "face not visible"

T = TypeVar("T")

STATUS_ORDER = ("error", "fail", "review", "inconclusive", "not defaced", "pass")
"""Worst first: the order of the group report."""


@dataclass
class ImageInput:
    """One anatomical image to check."""

    rel_path: str  # OUTPUT_DIR-relative path (output labels)
    suffix: str
    result: DefaceResult | None = None
    before: Path | None = None  # un-defaced image (private)
    after: Path | None = None  # defaced image; None when not defaced


@dataclass
class ImageQC:
    """Everything QC knows about one image (see the module docstring)."""

    rel_path: str
    suffix: str
    role: str
    status: str = "pass"
    face: face.FaceCheck | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # recomputed by QC
    reported: dict[str, float] = field(default_factory=dict)  # as defacing reported them
    gates: list[GateResult] = field(default_factory=list)
    template: str = ""
    template_contrast: str = ""
    anchor: str | None = None
    age_months: float | None = None
    age_source: str = ""
    error: str | None = None
    figures: list[Figure] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary (no figures, no paths outside OUTPUT_DIR)."""
        return {
            "path": self.rel_path, "suffix": self.suffix, "role": self.role,
            "status": self.status, "error": self.error,
            "face_check": self.face.to_dict() if self.face else None,
            "metrics": {k: _num(v) for k, v in sorted(self.metrics.items())},
            "defacing_metrics": {k: _num(v) for k, v in sorted(self.reported.items())},
            "safety_checks": [{"name": g.name, "passed": g.passed, "value": _num(g.value),
                       "threshold": g.threshold, "message": g.message} for g in self.gates],
            "template": self.template, "template_contrast": self.template_contrast,
            "anchor": self.anchor, "age_months": _num(self.age_months),
            "age_source": self.age_source,
        }


def _num(v: float | None) -> float | None:
    if v is None or not np.isfinite(v):
        return None
    return round(float(v), 3)


def overall_status(qc: ImageQC) -> str:
    if qc.error:
        return "error"
    if any(not g.passed for g in qc.gates):
        return "fail"
    if qc.face is None:
        return "not defaced" if qc.role == "not defaced" else "inconclusive"
    return {"fail": "fail", "review": "review", "inconclusive": "inconclusive",
            "not defaced": "not defaced"}.get(qc.face.status, "pass")


def _load(path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    if path is None or not Path(path).is_file():
        return None
    return volume.load_image(Path(path))


def _load_mask(path: Path | None, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    loaded = _load(path)
    if loaded is None:
        return None
    data, aff = loaded
    return data > 0.5, aff


def face_gate(check: face.FaceCheck) -> GateResult:
    """The face check as a safety gate (fails only when a face is seen after defacing)."""
    score = None
    if check.after is not None:
        score = max(list(check.after.haar.values()) + [0.0])
    return GateResult(FACE_GATE, passed=not check.failed, value=score,
                      threshold=f"detections < {face.HAAR_FACE} and nose prominence "
                                f"< {face.NOSE_FACE_MM:g} mm on the renders after defacing",
                      message=check.message)


def assess(item: ImageInput, threads: int = 1) -> ImageQC:
    """Render, check and measure one image (raises only on unreadable files). With
    ``threads`` > 1 the face detectors run in a second thread beside the nose check,
    the metrics and the slices (numpy, scipy and OpenCV let go of the GIL); the result
    is the same."""
    res = item.result
    qc = ImageQC(item.rel_path, item.suffix, res.role if res else "not defaced")
    if res is not None:
        qc.template, qc.template_contrast = res.template, res.template_contrast
        qc.anchor, qc.age_months, qc.age_source = res.anchor, res.age_months, res.age_source
        qc.reported = dict(res.metrics)
        qc.gates = [g for g in res.gates if g.name != FACE_GATE]
        qc.error = res.error
    pool = ThreadPoolExecutor(1, thread_name_prefix="bidsdeid-qc") if threads > 1 else None
    try:
        if pool is not None:
            pool.submit(face.load_detectors)  # while the image loads and resamples
        before, after = _load(item.before), _load(item.after)
        if before is None and after is None:
            qc.error = qc.error or "no image to check"
        else:
            _check(qc, item, before, after, pool, threads)
    finally:
        if pool is not None:
            pool.shutdown()
    qc.status = overall_status(qc)
    return qc


def _check(qc: ImageQC, item: ImageInput, before: tuple[np.ndarray, np.ndarray] | None,
           after: tuple[np.ndarray, np.ndarray] | None, pool: ThreadPoolExecutor | None,
           threads: int) -> None:
    """Renders, face check, metrics and figures of ``qc`` (``pool``: the detectors' thread)."""
    res = item.result
    ref_data, ref_aff = before if before is not None else after  # type: ignore[misc]
    shots = surface_renders(before, after, threads)
    grid, heads, camera, renders = shots.grid, shots.heads, shots.camera, shots.renders
    scale = face.scale_of(renders.get("before") or renders["after"])
    haar = {state: _soon(pool, face.haar_scores, views, scale)
            for state, views in renders.items() if "front" in views}
    nose = {state: face.nose_prominence(renders[state]["front"]) for state in haar}
    removed = _load_mask(res.removed_mask if res else None, ref_data.shape)
    brain = _load_mask(res.brain_mask if res else None, ref_data.shape)
    template = _load(res.template_warped if res else None)
    m, closest = metrics.defacing_metrics(
        before[0] if before else None, after[0] if after else None,
        removed[0] if removed else None,
        brain[0] if brain is not None and removed is not None
        and brain[0].shape == removed[0].shape else None, ref_aff)
    qc.metrics = m
    if template is not None and before is not None:
        corr = metrics.template_correlation(before[0], template[0])
        if corr is not None:
            qc.metrics["template_correlation"] = corr
    centre = closest.brain_point if closest else camera.center
    slice_figures = _slice_figures(before, after, removed, brain, template, grid, heads, centre)
    evidence: dict[str, face.FaceEvidence | None] = {
        state: face.combine(renders[state]["front"], haar[state](), nose[state])
        for state in haar}
    for state in renders:
        evidence.setdefault(state, face.FaceEvidence())  # no front view: nothing to look at
    ev_before, ev_after = evidence.get("before"), evidence.get("after")
    if item.after is not None or res is not None and res.role != "not defaced":
        qc.face = face.judge(ev_before, ev_after)
        if after is not None:
            qc.gates.append(face_gate(qc.face))
    else:
        qc.face = face.judge(ev_before, None)
    qc.figures.extend(_render_figures(renders, evidence))
    qc.figures.extend(slice_figures)


def _soon(pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any
          ) -> Callable[[], T]:
    """``fn(*args)`` in ``pool`` (or here and now, without one); call the result to
    wait for the value."""
    if pool is None:
        value = fn(*args)
        return lambda: value
    return pool.submit(fn, *args).result


@dataclass
class RenderSet:
    """The renders of one image before and after defacing, and how they were made."""

    grid: volume.RasGrid
    heads: dict[str, np.ndarray]  # "before", "after", "ref" head masks on ``grid``
    camera: render.Camera
    renders: dict[str, dict[str, render.SurfaceRender]]  # state -> view -> render


def surface_renders(before: tuple[np.ndarray, np.ndarray] | None,
                    after: tuple[np.ndarray, np.ndarray] | None, threads: int = 1
                    ) -> RenderSet:
    """Every view before and after defacing (data, affine pairs; either may be None),
    with one grid, one threshold, one camera and one light for both (resampled and
    blurred in ``threads`` slabs)."""
    ref = before if before is not None else after
    if ref is None:
        raise ValueError("nothing to render")
    grid = volume.RasGrid.covering(ref[0].shape, ref[1], box=volume.head_box(*ref))
    heads = _heads(before, after, grid, threads)
    points = {k: render.surface_points(m, grid) for k, m in heads.items() if k != "ref"}
    # "ref" is the "before" or the "after" mask itself (_heads): its surface is found once
    ref_key = next(k for k, m in heads.items() if k != "ref" and m is heads["ref"])
    camera = render.Camera.around(points[ref_key], grid.spacing)
    renders = {k: render.render_views(pts, camera) for k, pts in points.items()}
    return RenderSet(grid, heads, camera, renders)


def _heads(before: tuple[np.ndarray, np.ndarray] | None,
           after: tuple[np.ndarray, np.ndarray] | None, grid: volume.RasGrid,
           threads: int = 1) -> dict[str, np.ndarray]:
    """Head masks on ``grid``: "before", "after" (cut at the before threshold and kept
    inside the before head, so only what defacing changed differs) and "ref" (the head
    the camera frames)."""
    out: dict[str, np.ndarray] = {}
    threshold = None
    resampled_before = None
    if before is not None:
        resampled_before = volume.resample(*before, grid, threads=threads)
        sm = volume.smooth(resampled_before, threads)
        threshold = volume.head_threshold(sm)
        out["before"] = volume.head_mask(sm, threshold)
    if after is not None:
        if resampled_before is not None and before is not None:
            resampled_after = volume.resample_changes(before, after, resampled_before, grid)
        else:
            resampled_after = volume.resample(*after, grid, threads=threads)
        sm = volume.smooth(resampled_after, threads)
        if threshold is None:
            out["after"] = volume.head_mask(sm, volume.head_threshold(sm))
        else:
            out["after"] = (sm > threshold) & out["before"]
    out["ref"] = out["before"] if "before" in out else out["after"]
    return out


BOX_FACE = (230, 40, 40)
BOX_WEAK = (255, 150, 0)


def _render_figures(renders: dict[str, dict[str, render.SurfaceRender]],
                    evidence: dict[str, face.FaceEvidence | None]) -> list[Figure]:
    """One PNG per view and state, cropped to the same box before and after. After
    defacing, whatever the face check found is boxed (red: a face; orange: weak) so the
    reviewer sees where to look."""
    views = [v.name for v in render.VIEWS]
    out: list[Figure] = []
    for view in views:
        shots = {state: r[view] for state, r in renders.items() if view in r}
        rows, cols = figures.crop_box([s.foreground for s in shots.values()])
        title = next(v.title for v in render.VIEWS if v.name == view)
        for state, shot in sorted(shots.items()):
            image = shot.image
            ev = evidence.get(state)
            if state == "after" and ev is not None:
                image = _boxed(image, [d for d in ev.detections if d.view == view])
            out.append(Figure(f"render_{state}_{view}", f"{title}, {state} defacing",
                              figures.encode_png(image[rows, cols]),
                              shows_face=state == "before"))
    return out


def _boxed(image: np.ndarray, found: list[face.Detection]) -> np.ndarray:
    """The render in colour with the strongest find of each detector boxed."""
    best: dict[str, face.Detection] = {}
    for d in found:
        if d.box is not None and (d.detector not in best or d.score > best[d.detector].score):
            best[d.detector] = d
    if not best:
        return image
    import cv2

    rgb = np.repeat(image[..., None], 3, axis=2)
    for d in sorted(best.values(), key=lambda d: d.detector):
        x, y, w, h = d.box  # type: ignore[misc]
        strong = d.score >= (face.NOSE_FACE_MM if d.detector == "nose" else face.HAAR_FACE)
        cv2.rectangle(rgb, (x, y), (x + w - 1, y + h - 1), BOX_FACE if strong else BOX_WEAK, 1)
    return rgb


def _slice_figures(before: tuple[np.ndarray, np.ndarray] | None,
                   after: tuple[np.ndarray, np.ndarray] | None,
                   removed: tuple[np.ndarray, np.ndarray] | None,
                   brain: tuple[np.ndarray, np.ndarray] | None,
                   template: tuple[np.ndarray, np.ndarray] | None,
                   grid: volume.RasGrid, heads: dict[str, np.ndarray],
                   centre: tuple[float, float, float]) -> list[Figure]:
    """Mask overlays and the registration overlay, each on the image before (private)
    and after defacing (shareable)."""
    head = heads["ref"]
    idx = np.argwhere(head)
    if idx.size == 0:
        return []
    lo = grid.affine[:3, :3] @ (idx.min(axis=0) - 2) + grid.affine[:3, 3]
    hi = grid.affine[:3, :3] @ (idx.max(axis=0) + 2) + grid.affine[:3, 3]
    centre_mid = (float(grid.affine[0, 3] + grid.spacing * np.median(idx[:, 0])),
                  centre[1], centre[2])  # sagittal plane on the midline of the head
    planes = slices.planes_through(centre_mid, lo, hi, grid.spacing)
    ref = before if before is not None else after
    assert ref is not None
    window = slices.intensity_window(ref[0][::2, ::2, ::2])
    out: list[Figure] = []
    for state, img in (("before", before), ("after", after)):
        if img is None:
            continue
        panels, reg_panels = [], []
        for plane in planes:
            base = slices.grey(slices.sample(img[0], img[1], plane), window)
            rem = slices.sample(removed[0].astype(np.float32), removed[1], plane, 0) > 0.5 \
                if removed else None
            brn = slices.sample(brain[0].astype(np.float32), brain[1], plane, 0) > 0.5 \
                if brain else None
            panels.append(slices.draw(base, removed=rem, brain=brn))
            if template is not None:
                edges = slices.template_edges(slices.sample(template[0], template[1], plane))
                reg_panels.append(slices.draw(base, edges=edges))
        shows_face = state == "before"
        out.append(Figure(f"slices_{state}", "sagittal (midline), coronal and axial slices "
                          f"{state} defacing; red: removed, cyan: template brain",
                          figures.encode_png(_row(panels)), shows_face))
        if reg_panels:
            out.append(Figure(f"registration_{state}", "template edges (yellow) on the "
                              f"image {state} defacing", figures.encode_png(_row(reg_panels)),
                              shows_face))
    return out


def _row(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels side by side, top-aligned, on black."""
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = np.zeros((height, width, 3), np.uint8)
    x = 0
    for p in panels:
        out[:p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out
