"""The deface stage with a real ParticipantContext on staged copies of real heads."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsdeid.config import DefaceOptions, RunConfig
from bidsdeid.context import BidsImage
from bidsdeid.deface import gates, stage
from bidsdeid.deface.heads import NIFTI_HEADS
from bidsdeid.participant import make_context
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import NULL_PROGRESS

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


def _context(tmp_path: Path, shared: Path, run: str, *, age: str | None = None,
             **deface: object):
    bids = tmp_path / "bids"
    bids.mkdir(exist_ok=True)
    if age is not None:
        (bids / "participants.tsv").write_text(f"participant_id\tage\nsub-01\t{age}\n")
    cfg = RunConfig(bids_dir=bids, output_dir=tmp_path / "out", analysis_level="participant",
                    private_dir=tmp_path / "priv", work_dir=tmp_path / f"work{run}",
                    omp_nthreads=1, deface=DefaceOptions(sloppy=True, **deface))
    ctx = make_context(cfg, ProjectKey(b"k" * 32), "01", NULL_PROGRESS)
    ctx.session_map = {"pre": "1"}
    files = {"T1w": shared / NIFTI_HEADS["niivue_T1w"], "T2w": shared / NIFTI_HEADS["niivue_T2w"]}
    for suffix, src in files.items():
        rel = f"sub-01/ses-1/anat/sub-01_ses-1_run-1_{suffix}.nii.gz"
        ctx.stage_path(rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, ctx.stage_path(rel))
        ctx.images.append(BidsImage(rel, "anat", suffix, {"sub": "01", "ses": "1", "run": "1"},
                                    "1", f"bids anat/{suffix}"))
    return ctx, files


def test_stage_defaces_writes_masks_and_results(shared_data, template_env, tmp_path) -> None:
    ctx, files = _context(tmp_path, shared_data, "a", age="34")
    stage.run(ctx)
    assert not ctx.failed, [p.line() for p in ctx.problems]
    results = ctx.results["deface"]
    assert [r.role for r in results] == ["anchor", "coregistered"]
    t1, t2 = results
    for res, im in zip(results, ctx.images, strict=True):
        assert res.passed and res.defaced == ctx.stage_path(im.rel_path)
        assert im.original == res.original and res.original.is_file()
        assert str(res.original).startswith(str(ctx.work))
        # the private copy is the un-defaced input, the staged one is defaced in place
        src = files[im.suffix]
        assert np.array_equal(np.asanyarray(nib.load(res.original).dataobj),
                              np.asanyarray(nib.load(src).dataobj))
        staged = nib.load(res.defaced)
        removed = np.asanyarray(nib.load(res.removed_mask).dataobj).astype(bool)
        assert staged.get_data_dtype() == nib.load(src).get_data_dtype()
        assert np.allclose(staged.affine, nib.load(src).affine)
        assert (np.asanyarray(staged.dataobj)[removed] == 0).all()
        for p in (res.brain_mask, res.template_warped):
            assert nib.load(p).shape[:3] == staged.shape[:3]
        assert res.template == "pydeface" and res.template_contrast == "T1w"
        assert res.age_months == pytest.approx(34 * 12) and res.age_source == "participants.tsv"
        for key in ("voxels_removed", "removed_ml", "brain_voxels_removed",
                    "brain_distance_mm", "similarity"):
            assert key in res.metrics
        assert {g.name for g in res.gates} == {"brain protection", "face coverage",
                                               "registration"}
        mask = ctx.staging / res.mask_derivative
        assert np.array_equal(np.asanyarray(nib.load(mask).dataobj).astype(bool), removed)
    assert t1.mask_derivative == ("derivatives/bidsdeid/sub-01/ses-1/anat/"
                                  "sub-01_ses-1_run-1_space-T1w_desc-deface_mask.nii.gz")
    assert t2.mask_derivative.endswith("sub-01_ses-1_run-1_space-T2w_desc-deface_mask.nii.gz")
    assert t2.anchor == t1.rel_path and t1.anchor is None

    # a second run gives byte-identical shareable files
    ctx2, _ = _context(tmp_path, shared_data, "b", age="34")
    stage.run(ctx2)
    for res in results:
        for rel in (res.rel_path, res.mask_derivative):
            assert (ctx.staging / rel).read_bytes() == (ctx2.staging / rel).read_bytes()


def test_failed_gate_leaves_nothing_in_staging(shared_data, template_env, tmp_path,
                                               monkeypatch) -> None:
    monkeypatch.setattr(gates, "MIN_SIMILARITY_TEMPLATE", 9.0)  # no registration can pass
    ctx, _ = _context(tmp_path, shared_data, "c")
    stage.run(ctx)
    assert ctx.failed
    errors = [p for p in ctx.problems if p.level == "error"]
    assert {p.where for p in errors} == {im.rel_path for im in ctx.images}
    assert all("registration" in p.message or "anchor" in p.message for p in errors)
    for im, res in zip(ctx.images, ctx.results["deface"], strict=True):
        assert not ctx.stage_path(im.rel_path).exists()
        assert res.defaced is None and res.error and res.original.is_file()
        assert res.age_source == "none (adult assumed)"
    assert not (ctx.staging / "derivatives").exists()


def test_missing_template_fails_the_session_with_a_clear_message(shared_data, tmp_path,
                                                                 monkeypatch) -> None:
    """An adult T2w-only session needs MNI152NLin2009cAsym T2w: not here -> error naming it."""
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "empty_tf"))
    ctx, _ = _context(tmp_path, shared_data, "d")
    ctx.images = [im for im in ctx.images if im.suffix == "T2w"]
    stage.run(ctx)
    msgs = [p.message for p in ctx.problems if p.level == "error"]
    assert len(msgs) == 1
    assert "tpl-MNI152NLin2009cAsym_res-01_T2w.nii.gz" in msgs[0]
    assert "fetch_templates.py" in msgs[0]
    assert not ctx.stage_path(ctx.images[0].rel_path).exists()


def test_modalities_none_and_subset(shared_data, template_env, tmp_path) -> None:
    ctx, _ = _context(tmp_path, shared_data, "e", modalities=["none"])
    stage.run(ctx)
    assert not ctx.failed and "deface" not in ctx.results
    assert any("defacing skipped" in p.message for p in ctx.problems)
    ctx, _ = _context(tmp_path, shared_data, "f", modalities=["T1w"])
    stage.run(ctx)
    roles = {r.suffix: r.role for r in ctx.results["deface"]}
    assert roles == {"T2w": "not defaced", "T1w": "anchor"}
    assert any("not defaced" in p.message and p.level == "warning" for p in ctx.problems)
