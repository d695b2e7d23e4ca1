"""Dataset-wide files of OUTPUT_DIR: dataset_description.json, README, .bidsignore and
participants.tsv/.json, assembled from per-participant fragments under a lock (so
parallel SLURM tasks never race), and BIDS validation of the output."""

from __future__ import annotations

from bidsdeid.config import RunConfig


def update_shared_files(config: RunConfig) -> None:
    raise NotImplementedError("bids.dataset.update_shared_files is not built yet")
