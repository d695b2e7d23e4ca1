"""The private dir of the site commands that take no OUTPUT_DIR.

``bidsdeid-inventory`` and ``bidsdeid-receive`` default to
``<BIDS_DIR parent>/<BIDS_DIR name>_deid_private``: the private dir ``bidsdeid`` itself
uses when OUTPUT_DIR is ``<BIDS_DIR>_deid`` (the place ``bidsdeid`` suggests), so a
site that keeps the defaults has one key for receiving and de-identifying, and the
labels a receiver derives from PatientIDs stay those of later runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from bidsdeid.errors import CannotCreateOutput, UsageError
from bidsdeid.utils.paths import is_inside


def default_private_dir(bids_dir: Path) -> Path:
    return bids_dir.parent / f"{bids_dir.name}_deid_private"


def private_dir(bids_dir: Path, given: Path | None) -> Path:
    """The private dir (created 0700), refused inside BIDS_DIR or around it."""
    private = Path(os.path.abspath(given)) if given else default_private_dir(bids_dir)
    if is_inside(private, bids_dir) or is_inside(bids_dir, private):
        raise UsageError(f"the private dir ({private}) must not be inside BIDS_DIR "
                         f"({bids_dir}) or contain it")
    try:
        private.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(private, 0o700)
    except OSError as exc:
        raise CannotCreateOutput(f"cannot create {private}: {exc.strerror or exc}") from exc
    return private
