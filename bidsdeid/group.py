"""The group level: dataset files, group QC report, whole-dataset leak scan, and BIDS
validation of OUTPUT_DIR (exit 16 on validator errors)."""

from __future__ import annotations

from bidsdeid.config import RunConfig
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.progress import Progress


def run(config: RunConfig, key: ProjectKey, progress: Progress) -> int:
    raise NotImplementedError("group level is not built yet")
