"""Report plumbing: templates ship in the package, autoescape is on, shareable text
names no folder and rounds ages the way participants.tsv does."""

from __future__ import annotations

from importlib import resources

import jinja2

from bidsdeid.qc import report
from bidsdeid.qc.assess import ImageQC


def test_templates_ship_in_the_package_and_escape() -> None:
    folder = resources.files("bidsdeid.qc").joinpath("templates")
    for name in ("base.html", "macros.html", "participant.html", "group.html"):
        assert folder.joinpath(name).is_file(), name
    env = report.environment()
    assert isinstance(env.loader, jinja2.PackageLoader)
    assert env.from_string("{{ x }}").render(x="<script>") == "&lt;script&gt;"


def test_shareable_page_and_json_hide_folders_and_exact_ages() -> None:
    qc = ImageQC("sub-A1/anat/sub-A1_T1w.nii.gz", "T1w", "anchor", status="pass",
                 template="/home/jane.doe/study/my_template.nii.gz", age_months=1100.0,
                 age_source="participants.tsv")
    shared = report.render_participant(images=[qc], private=False, title="sub-A1",
                                       input_sub="sub-A1", output_sub="sub-A1", problems=[],
                                       notes=[], failed=False)
    metrics = report.shareable_metrics([qc], "sub-A1", "pass")
    assert "jane.doe" not in shared and "my_template.nii.gz" in shared
    assert metrics["images"][0]["template"] == "my_template.nii.gz"
    assert metrics["images"][0]["age"] == "89 years"  # 91.7 years, capped like the tables
    assert "age_months" not in metrics["images"][0]
    private = report.render_participant(images=[qc], private=True, title="sub-01",
                                        input_sub="sub-01", output_sub="sub-A1", problems=[],
                                        notes=[], failed=False)
    assert "jane.doe" in private and "91.7 years" in private
    assert report.shareable_age(13.26) == "13.3 months"
    assert report.shareable_age(None) is None
