"""A reviewer's verdicts: ``PRIVATE_DIR/reports/review.tsv``, read by the group report.

Format (tab-separated, UTF-8, one header line; the columns in any order)::

    participant  image                            verdict  comment              reviewer
    sub-01       sub-01/anat/sub-01_T1w.nii.gz    pass     face gone, brain ok  AB
    sub-02       *                                fail     ear still visible    AB

``participant`` is the participant as the private report names it (``sub-<input>``,
with or without ``sub-``; the output label works too). ``image`` is the image path
shown in the report, or ``*`` (or empty) for every image of the participant.
``verdict`` is ``pass`` or ``fail``. A later line overrides an earlier one for the
same participant and image. Lines that do not follow the format are reported, never
guessed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

REVIEW_FILE = "review.tsv"
COLUMNS = ("participant", "image", "verdict", "comment", "reviewer")
VERDICTS = ("pass", "fail")


@dataclass(frozen=True)
class Review:
    verdict: str
    comment: str
    reviewer: str
    line: int


@dataclass
class Reviews:
    """Verdicts by (participant label without ``sub-``, image path or ``*``)."""

    by_key: dict[tuple[str, str], Review] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def find(self, labels: list[str], image: str) -> Review | None:
        """The verdict for ``image`` of the participant known by any of ``labels``."""
        for label in labels:
            hit = self.by_key.get((label, image)) or self.by_key.get((label, "*"))
            if hit is not None:
                return hit
        return None


def _label(value: str) -> str:
    return value.strip().removeprefix("sub-")


def read_reviews(path: Path) -> Reviews:
    """Parse ``review.tsv`` (a missing file is no review, not an error)."""
    out = Reviews()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return out
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(f"{path.name}: cannot be read ({type(exc).__name__})")
        return out
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows:
        return out
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("participant", "verdict") if c not in header]
    if missing:
        out.problems.append(f"{path.name}: header lacks {', '.join(missing)} (expected "
                            f"{' / '.join(COLUMNS)}, tab-separated)")
        return out
    col = {name: header.index(name) for name in COLUMNS if name in header}
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue

        def get(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        participant = _label(get("participant"))
        verdict = get("verdict").lower()
        if not participant:
            out.problems.append(f"{path.name} line {n}: no participant")
            continue
        if verdict not in VERDICTS:
            out.problems.append(f"{path.name} line {n}: verdict must be pass or fail")
            continue
        image = get("image") or "*"
        out.by_key[(participant, image)] = Review(verdict, get("comment"), get("reviewer"), n)
    return out
