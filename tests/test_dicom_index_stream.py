"""Large enhanced files: the index reads their per-frame functional groups one item at a
time (bidsdeid.dicom.index._read_streaming) and must find exactly what a whole read
finds: the same file facts (every frame), the same identifiers (planted ones in the
per-frame items too), the same indexed file, and the first frame kept for planning."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from bidsdeid.convert.facts import FactsCollector
from bidsdeid.dicom import index
from bidsdeid.privacy.identifiers import Identifiers

pytestmark = [pytest.mark.needs_shared]

XA30 = "dicom/siemens_xa30_enhanced"


def _read_all(files: list[Path], stream: bool, monkeypatch: pytest.MonkeyPatch
              ) -> tuple[dict, dict, list, list]:
    monkeypatch.setattr(index, "STREAM_FRAMES_ABOVE", 0 if stream else 10**9)
    facts, ids, indexed, kept = FactsCollector(), Identifiers(), [], []
    streamed = []

    def on_frames(top: Dataset):  # type: ignore[no-untyped-def]
        add = facts.frames(top)
        streamed.append(top)

        def on_frame(item: Dataset) -> None:
            ids.add_dataset_fast(item)
            add(item)

        return on_frame

    for path in files:
        r = index.read_header(path, on_frames)
        assert r.problem is None and r.ds is not None, (path.name, r.problem)
        ids.add_dataset_fast(r.ds)
        facts(r.ds)
        indexed.append(r.file)
        per_frame = r.ds.get("PerFrameFunctionalGroupsSequence")
        kept.append(per_frame[0] if per_frame else None)
    assert bool(streamed) == stream  # the path under test was really taken
    values = {kind: set(found) for kind, found in ids.values.items()}
    return {Path(k).name: v for k, v in facts.by_path.items()}, values, indexed, kept


def _enhanced_files(shared: Path) -> list[Path]:
    files = sorted(p for p in (shared / XA30).rglob("*.dcm")
                   if "PerFrameFunctionalGroupsSequence" in pydicom.dcmread(
                       p, stop_before_pixels=True, specific_tags=[0x52009230]))
    assert len(files) >= 10
    return files


@pytest.mark.parametrize("encoding", ["original", "implicit", "defined-lengths"])
def test_streamed_per_frame_groups_give_what_a_whole_read_gives(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        encoding: str) -> None:
    files = _enhanced_files(shared_data)[:12]
    if encoding != "original":
        copies = []
        for i, src in enumerate(files):
            ds = pydicom.dcmread(src)
            if encoding == "implicit":
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            else:
                for elem in ds.iterall():
                    if elem.VR == "SQ":
                        elem.is_undefined_length = False
                        for item in elem.value:
                            item.is_undefined_length_sequence_item = False
            out = tmp_path / f"{i:03d}.dcm"
            ds.save_as(out, enforce_file_format=True)
            copies.append(out)
        files = copies
    whole = _read_all(files, False, monkeypatch)
    streamed = _read_all(files, True, monkeypatch)
    assert streamed[0] == whole[0]  # facts of every frame: positions, echoes, b-values
    assert streamed[1] == whole[1]  # identifiers
    assert streamed[2] == whole[2]  # the indexed files
    assert streamed[3] == whole[3]  # the first frame, kept for planning
    assert any(f.n_frames > 1 for f in whole[2])


def test_identifiers_planted_in_a_late_frame_are_found(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = next(p for p in _enhanced_files(shared_data)
               if int(pydicom.dcmread(p, stop_before_pixels=True).NumberOfFrames) > 20)
    ds = pydicom.dcmread(src)
    item = ds.PerFrameFunctionalGroupsSequence[-1]
    item.FrameContentSequence[0].ReferringPhysicianName = "Quillfeather^Oxbrenwick"
    block = item.private_block(0x0011, "PLANTED LATE", create=True)
    block.add_new(0x01, "PN", "Vandermoop^Ysolde")
    path = tmp_path / "late.dcm"
    ds.save_as(path, enforce_file_format=True)
    _facts, values, _indexed, _kept = _read_all([path], True, monkeypatch)
    found = {v for vals in values.values() for v in vals}
    assert any("Vandermoop" in v for v in found)
    assert any("Quillfeather" in v for v in found)
