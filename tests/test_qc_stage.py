"""The QC stage on real heads: reports where they belong, a face after defacing fails
the participant, reports exist even after a failure, and the shareable files are
reproducible, PHI-free and hold no image taken before defacing."""

# ruff: noqa: F811 - fixtures imported from test_qc_support are parameters here
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pydicom
import pytest
from test_qc_support import (  # noqa: F401 - real_heads is a fixture
    DICOM_T1W,
    add_image,
    make_ctx,
    real_heads,
)

from bidsdeid.context import ParticipantContext
from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.qc import figures, stage
from bidsdeid.qc.assess import FACE_GATE

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]

MAX_REPORT_BYTES = 5 * 1024 * 1024
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"')


def images_of(html: str) -> list[tuple[bytes, str]]:
    """(PNG bytes, alt text) of every inline image of a page."""
    return [(base64.b64decode(b64), alt) for b64, alt in IMG.findall(html)]


def shareable_files(ctx: ParticipantContext) -> dict[str, bytes]:
    root = ctx.staging / "derivatives" / "bidsdeid"
    return {str(p.relative_to(ctx.staging)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def run_two_images(root: Path, heads: dict[str, Path]) -> ParticipantContext:
    ctx = make_ctx(root, "01", "A1")
    add_image(ctx, "T1w", heads["niivue_T1w"])
    add_image(ctx, "T2w", heads["niivue_T2w"])
    stage.run(ctx)
    return ctx


def test_reports_land_in_the_private_dir_and_the_staging(real_heads: dict[str, Path],
                                                         tmp_path: Path) -> None:
    ctx = run_two_images(tmp_path, real_heads)
    cfg = ctx.config
    private = cfg.reports_dir / "sub-01.html"
    state = cfg.state_dir / "sub-01" / "qc.json"
    assert private.is_file() and state.is_file()
    assert sorted(shareable_files(ctx)) == ["derivatives/bidsdeid/sub-A1.html",
                                            "derivatives/bidsdeid/sub-A1_qc.json"]
    assert not cfg.output_dir.exists()  # nothing is published by QC itself
    # the T1w passes; the T2w slab cannot show that the detector works: a warning
    assert not ctx.failed
    warnings = [p for p in ctx.problems if p.level == "warning" and p.stage == "qc"]
    assert [w.where for w in warnings] == ["sub-A1/anat/sub-A1_T2w.nii.gz"]
    assert "inconclusive" in warnings[0].message
    for res in ctx.results["deface"]:
        gates = [g for g in res.gates if g.name == FACE_GATE]
        assert len(gates) == 1 and gates[0].passed
    record = json.loads(state.read_text())
    assert [im["status"] for im in record["images"]] == ["pass", "inconclusive"]
    assert record["input_label"] == "01" and record["output_label"] == "A1"
    # every report under 5 MB; the private page shows before and after
    for path in (private, ctx.staging / "derivatives/bidsdeid/sub-A1.html"):
        assert path.stat().st_size < MAX_REPORT_BYTES
    alts = [alt for _, alt in images_of(private.read_text())]
    assert sum("before defacing" in a for a in alts) == sum("after defacing" in a for a in alts)
    assert any("template edges" in a for a in alts)  # the registration overlay
    metrics = json.loads((ctx.staging / "derivatives/bidsdeid/sub-A1_qc.json").read_text())
    t1 = metrics["images"][0]
    for key in ("voxels_removed", "removed_ml", "brain_voxels_removed", "brain_distance_mm",
                "template_correlation"):
        assert key in t1["metrics"]
    assert t1["metrics"]["brain_voxels_removed"] == 0
    assert t1["defacing_metrics"]["similarity"] == 0.5
    assert t1["age_source"] == "none (adult assumed)"


def test_shareable_files_are_reproducible(real_heads: dict[str, Path], tmp_path: Path) -> None:
    one = shareable_files(run_two_images(tmp_path / "one", real_heads))
    two = shareable_files(run_two_images(tmp_path / "two", real_heads))
    assert one == two
    for rel, data in one.items():
        text = data.decode("utf-8")
        assert str(tmp_path) not in text and "/tmp" not in text, rel
        if rel.endswith(".json"):
            parsed = json.loads(text)
            assert text == json.dumps(parsed, indent=2, sort_keys=True,
                                      ensure_ascii=False) + "\n"


def dicom_identifiers(shared: Path) -> Identifiers:
    ids = Identifiers()
    folder, pattern = DICOM_T1W["philips_T1w"]
    for f in sorted((shared / folder).glob(pattern))[:5]:
        ids.add_dataset(pydicom.dcmread(f, stop_before_pixels=True))
    return ids


def test_shareable_reports_hold_no_identifier_and_no_image_before_defacing(
        real_heads: dict[str, Path], shared_data: Path, tmp_path: Path) -> None:
    """The leak scan of derivatives/bidsdeid: every token of the DICOM headers of the
    converted head and the original label, and every image made before defacing."""
    ctx = make_ctx(tmp_path, "philips7", "A1")
    ctx.identifiers = dicom_identifiers(shared_data)
    ctx.identifiers.add_label("philips7")
    add_image(ctx, "T1w", real_heads["philips_T1w"])
    stage.run(ctx)
    assert not ctx.failed, [p.line() for p in ctx.problems]
    files = shareable_files(ctx)
    tokens = ctx.identifiers.tokens()
    assert len(tokens) > 10 and any(t.kind == "name" for t in tokens)
    for rel, data in files.items():
        for tok in tokens:
            assert not tok.pattern().search(data), (rel, tok.kind, tok.source)
    private = (ctx.config.reports_dir / "sub-philips7.html").read_text()
    before = [png for png, alt in images_of(private) if "before defacing" in alt]
    after = [png for png, alt in images_of(private) if "after defacing" in alt]
    assert len(before) >= 7 and len(after) >= 7  # 5 renders, slices, registration
    for data in files.values():
        for png in before:
            assert png not in data
            assert base64.b64encode(png) not in data
    shared_html = files["derivatives/bidsdeid/sub-A1.html"].decode()
    shared_images = images_of(shared_html)
    assert shared_images and all("after defacing" in alt for _, alt in shared_images)
    assert {png for png, _ in shared_images} <= set(after)
    assert "philips7" not in shared_html
    # every inline image is pixels only (no text chunk), so a leak scan may set it aside
    _, n_pixel_only = figures.without_inline_pngs(files["derivatives/bidsdeid/sub-A1.html"])
    assert n_pixel_only == len(shared_images)


def test_a_face_after_defacing_fails_the_participant(real_heads: dict[str, Path],
                                                     tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    rel = add_image(ctx, "T1w", real_heads["niivue_T1w"], shift_mm=(0.0, 0.0, -60.0))
    stage.run(ctx)
    assert ctx.failed
    errors = [p for p in ctx.problems if p.level == "error"]
    assert [(e.stage, e.where) for e in errors] == [("qc", rel)]
    assert "face visible after defacing" in errors[0].message
    gate = [g for g in ctx.results["deface"][0].gates if g.name == FACE_GATE]
    assert len(gate) == 1 and not gate[0].passed
    metrics = json.loads((ctx.staging / "derivatives/bidsdeid/sub-01_qc.json").read_text())
    assert metrics["status"] == "fail" and metrics["images"][0]["status"] == "fail"
    private = (ctx.config.reports_dir / "sub-01.html").read_text()
    assert "face visible after defacing" in private
    # QC runs again after a later failure (participant.process does): no duplicate gate
    stage.run(ctx)
    assert len([g for g in ctx.results["deface"][0].gates if g.name == FACE_GATE]) == 1


def test_reports_are_written_when_a_participant_fails_part_way(
        real_heads: dict[str, Path], tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    add_image(ctx, "T1w", real_heads["niivue_T1w"])
    t2 = add_image(ctx, "T2w", real_heads["niivue_T2w"], deface=False)
    ctx.error("deface", t2, "registration to the anchor failed")
    stage.run(ctx)
    private = (ctx.config.reports_dir / "sub-01.html").read_text()
    assert "registration to the anchor failed" in private
    record = json.loads((ctx.config.state_dir / "sub-01" / "qc.json").read_text())
    assert record["failed"] is True
    assert [im["status"] for im in record["images"]] == ["pass", "not defaced"]
    t2_section = next(sec for sec in private.split("<section")[1:] if t2 in sec)
    assert any("before defacing" in alt for _, alt in images_of(t2_section))
    # no second error for the image defacing never reached: the failure is already known
    assert [p.stage for p in ctx.problems if p.level == "error"] == ["deface"]


def test_reports_exist_when_nothing_was_staged(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.error("load inputs", ctx.sub, "nothing to convert")
    stage.run(ctx)
    private = (ctx.config.reports_dir / "sub-01.html").read_text()
    assert "nothing to convert" in private
    assert (ctx.staging / "derivatives/bidsdeid/sub-01_qc.json").is_file()


def test_skipped_defacing_is_reported_not_failed(real_heads: dict[str, Path],
                                                tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, modalities=["none"])
    add_image(ctx, "T1w", real_heads["niivue_T1w"], deface=False)
    stage.run(ctx)
    assert not ctx.failed
    shared = (ctx.staging / "derivatives/bidsdeid/sub-01.html").read_text()
    assert "<img" not in shared  # every render would show the face
    assert "--deface-modalities none" in shared
    private = (ctx.config.reports_dir / "sub-01.html").read_text()
    assert images_of(private)
    record = json.loads((ctx.config.state_dir / "sub-01" / "qc.json").read_text())
    assert record["defacing"] == "skipped"
    assert record["images"][0]["status"] == "not defaced"
    assert record["images"][0]["face_check"]["before"]["face"] is True


def test_an_anatomical_image_left_undefaced_is_an_error(real_heads: dict[str, Path],
                                                       tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    rel = add_image(ctx, "T1w", real_heads["niivue_T1w"], deface=False)
    stage.run(ctx)
    assert [(p.stage, p.where, p.message) for p in ctx.problems if p.level == "error"] == [
        ("qc", rel, "anatomical image was not defaced")]


def test_a_defaced_image_qc_cannot_read_fails_closed(real_heads: dict[str, Path],
                                                    tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    rel = add_image(ctx, "T1w", real_heads["niivue_T1w"])
    res = ctx.results["deface"][0]
    Path(res.defaced).write_bytes(b"not a nifti")
    Path(res.original).write_bytes(b"not a nifti either")
    stage.run(ctx)
    errors = [p for p in ctx.problems if p.level == "error"]
    assert [(e.stage, e.where) for e in errors] == [("qc", rel)]
    record = json.loads((ctx.config.state_dir / "sub-01" / "qc.json").read_text())
    assert record["images"][0]["status"] == "error"


def test_a_participant_with_many_images_still_gets_a_page_under_5_mb(
        real_heads: dict[str, Path], tmp_path: Path) -> None:
    from bidsdeid.qc.assess import ImageInput, assess
    from bidsdeid.qc.report import render_participant

    ctx = make_ctx(tmp_path)
    add_image(ctx, "T1w", real_heads["ds000031_T1w"])
    res = ctx.results["deface"][0]
    qc = assess(ImageInput(res.rel_path, "T1w", res, res.original, res.defaced))
    many = [qc] * 16  # e.g. a multi-echo series and several sessions
    raw = sum(len(f.data_uri) for f in qc.figures) * len(many)
    assert raw > MAX_REPORT_BYTES  # too big as it comes
    html = render_participant(images=many, private=True, title="sub-01", input_sub="sub-01",
                              output_sub="sub-01", problems=[], notes=[], failed=False)
    assert len(html.encode()) < MAX_REPORT_BYTES
    assert len(images_of(html)) == len(qc.figures) * len(many)  # nothing dropped
