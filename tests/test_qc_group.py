"""The group QC report: every participant (failed ones too), failures and checks that
need a human first, the reviewer's verdicts, the validator's warnings, and a TSV."""

# ruff: noqa: F811 - fixtures imported from test_qc_support are parameters here
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_qc_support import add_image, make_ctx, real_heads  # noqa: F401 - fixture

from bidsdeid.config import RunConfig
from bidsdeid.qc import stage
from bidsdeid.qc.group import GROUP_TSV, write_group_report
from bidsdeid.qc.review import read_reviews


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.needs_shared
@pytest.mark.slow
def test_group_report_puts_failures_first_and_shows_reviews(real_heads: dict[str, Path],
                                                            tmp_path: Path) -> None:
    good = make_ctx(tmp_path, "01")
    add_image(good, "T1w", real_heads["niivue_T1w"])
    stage.run(good)
    cfg: RunConfig = good.config
    (cfg.state_dir / "sub-01" / "complete.json").write_text("{}")
    bad = make_ctx(tmp_path, "03")
    add_image(bad, "T1w", real_heads["niivue_T1w"], shift_mm=(0.0, 0.0, -60.0))
    stage.run(bad)
    assert bad.failed
    (cfg.state_dir / "sub-03" / "failed.json").write_text(json.dumps(
        {"output_label": "03", "problems": [p.line() for p in bad.problems]}))
    (cfg.state_dir / "sub-02").mkdir(parents=True)  # failed before QC wrote anything
    (cfg.state_dir / "sub-02" / "failed.json").write_text(json.dumps(
        {"output_label": "02", "problems": ["error: [convert DICOM] series 5: truncated"]}))
    (cfg.reports_dir / "review.tsv").write_text(
        "participant\timage\tverdict\tcomment\treviewer\n"
        "sub-01\tsub-01/anat/sub-01_T1w.nii.gz\tpass\tbrain intact\tAB\n"
        "03\t*\tfail\tnose visible\tCD\n"
        "sub-04\t*\tperhaps\t\t\n")
    (cfg.reports_dir / "bids_validator.json").write_text(json.dumps(
        {"warnings": ["README is short"], "errors": []}))
    html_path = write_group_report(cfg)
    assert html_path == cfg.reports_dir / "group.html"
    rows = read_tsv(cfg.reports_dir / GROUP_TSV)
    assert [(r["participant"], r["outcome"], r["status"]) for r in rows] == [
        ("sub-02", "failed", "error"), ("sub-03", "failed", "fail"),
        ("sub-01", "published", "pass")]
    by = {r["participant"]: r for r in rows}
    assert by["sub-01"]["review"] == "pass" and by["sub-01"]["reviewer"] == "AB"
    assert by["sub-03"]["review"] == "fail" and by["sub-03"]["review_comment"] == "nose visible"
    assert by["sub-03"]["face"] == "fail" and "face not visible: FAIL" in by["sub-03"]["gates"]
    assert "truncated" in by["sub-02"]["problems"]
    assert by["sub-01"]["brain_voxels_removed"] == "0"
    assert float(by["sub-01"]["removed_ml"]) > 0
    html = html_path.read_text()
    assert "README is short" in html
    assert "review.tsv line 4: verdict must be pass or fail" in html
    assert html.count('href="sub-01.html"') == 1 and html.count('href="sub-03.html"') == 1
    assert 'href="sub-02.html"' not in html  # no page for a participant QC never saw
    # participant pages are where the group page links them
    assert (cfg.reports_dir / "sub-01.html").is_file()


def test_group_report_without_participants(tmp_path: Path) -> None:
    cfg = RunConfig(bids_dir=tmp_path / "b", output_dir=tmp_path / "o",
                    analysis_level="group", private_dir=tmp_path / "p", work_dir=tmp_path / "w")
    path = write_group_report(cfg)
    assert "No participant has been processed yet" in path.read_text()
    assert read_tsv(cfg.reports_dir / GROUP_TSV) == []


def test_review_file_format(tmp_path: Path) -> None:
    path = tmp_path / "review.tsv"
    path.write_text("\ufeffReviewer\tParticipant\tImage\tVerdict\tComment\n"
                    "AB\tsub-01\t*\tPASS\tfine\n"
                    "AB\t01\tsub-01/anat/sub-01_T2w.nii.gz\tfail\tear\n"
                    "CD\tsub-01\t*\tfail\tsecond look\n"
                    "\n"
                    "CD\t\t*\tpass\t\n", encoding="utf-8")
    reviews = read_reviews(path)
    t1 = reviews.find(["01"], "sub-01/anat/sub-01_T1w.nii.gz")
    assert t1 is not None and (t1.verdict, t1.reviewer, t1.comment) == ("fail", "CD",
                                                                       "second look")
    t2 = reviews.find(["01"], "sub-01/anat/sub-01_T2w.nii.gz")
    assert t2 is not None and t2.verdict == "fail" and t2.comment == "ear"
    assert reviews.find(["02"], "x") is None
    assert reviews.problems == ["review.tsv line 6: no participant"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("who\twhat\nsub-01\tpass\n")
    assert "header lacks participant, verdict" in read_reviews(bad).problems[0]
    assert read_reviews(tmp_path / "missing.tsv").by_key == {}
