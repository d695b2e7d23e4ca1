"""--relabel keep|sequential|random, the linkage file, and labels as identifiers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bidsdeid.bids import labels
from bidsdeid.config import RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.privacy.keys import ProjectKey


def _ctx(tmp_path: Path, label: str, relabel: str, sessions: list[str],
         key: bytes = b"k" * 32) -> ParticipantContext:
    bids = tmp_path / "bids"
    for ses in sessions:
        (bids / f"sub-{label}" / f"ses-{ses}" / "anat").mkdir(parents=True, exist_ok=True)
    if not sessions:
        (bids / f"sub-{label}" / "anat").mkdir(parents=True, exist_ok=True)
    cfg = RunConfig(bids_dir=bids, output_dir=tmp_path / "out", analysis_level="participant",
                    private_dir=tmp_path / "private", work_dir=tmp_path / "work", relabel=relabel)
    k = ProjectKey(key)
    return ParticipantContext(config=cfg, key=k, input_label=label, output_label=label,
                              offset=k.date_offset(label), work=tmp_path / "work",
                              staging=tmp_path / "work" / "staging",
                              bids_root=bids / f"sub-{label}")


def test_keep_changes_nothing_but_records_the_offset(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "patientA", "keep", ["pre", "post"])
    labels.assign(ctx)
    assert ctx.output_label == "patientA"
    assert ctx.session_map == {None: None, "pre": "pre", "post": "post"}
    assert len(ctx.identifiers) == 0  # nothing replaced, nothing to hide
    rows = labels.read_linkage(tmp_path / "private" / "linkage.tsv")
    assert rows[0].date_offset_days == str(ctx.offset.days)


def test_sequential_is_stable_and_replaced_labels_become_identifiers(tmp_path: Path) -> None:
    a = _ctx(tmp_path, "patientA", "sequential", ["post", "pre"])
    labels.assign(a)
    b = _ctx(tmp_path, "patientB", "sequential", [])
    labels.assign(b)
    assert (a.output_label, b.output_label) == ("001", "002")
    assert a.session_map["post"] == "01" and a.session_map["pre"] == "02"  # label order
    assert "patientA" in a.identifiers.values["label"]
    assert "post" in a.identifiers.values["label"]
    again = _ctx(tmp_path, "patientA", "sequential", ["post", "pre", "zfollow"])
    labels.assign(again)  # a rerun reuses numbers; a new session gets the next one
    assert again.output_label == "001"
    assert again.session_map == {None: None, "post": "01", "pre": "02", "zfollow": "03"}
    path = tmp_path / "private" / "linkage.tsv"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "sub-patientA\tsub-001\tses-zfollow\tses-03\tsequential" in text
    assert "sub-patientB\tsub-002\tn/a\tn/a\tsequential" in text


@pytest.mark.parametrize("relabel", ["random"])
def test_random_depends_on_the_key_only(tmp_path: Path, relabel: str) -> None:
    a1 = _ctx(tmp_path / "1", "patientA", relabel, ["pre"])
    labels.assign(a1)
    a2 = _ctx(tmp_path / "2", "patientA", relabel, ["pre"])
    labels.assign(a2)
    other_key = _ctx(tmp_path / "3", "patientA", relabel, ["pre"], key=b"z" * 32)
    labels.assign(other_key)
    assert a1.output_label == a2.output_label != other_key.output_label
    assert a1.output_label.isalnum() and len(a1.output_label) == 8
    assert a1.session_map["pre"] == a2.session_map["pre"] != "pre"
