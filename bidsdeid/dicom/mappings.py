"""``uid_mapping.csv`` and ``patid_mapping.csv`` in PRIVATE_DIR (MIDI-B validator format).

Both are two-column CSV files, header ``id_old,id_new``, one row per original value,
sorted. Several SLURM tasks may add rows at once: each merge holds an inter-process
lock (:func:`bidsdeid.utils.locks.file_lock`), reads the current file, adds its rows
and rewrites the file atomically, so no task's rows are lost and no reader ever sees
half a file. The files hold original identifiers: owner-only permissions.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from pathlib import Path

from bidsdeid.utils.atomic import write_text
from bidsdeid.utils.locks import file_lock

log = logging.getLogger("bidsdeid")

UID_MAPPING = "uid_mapping.csv"
PATID_MAPPING = "patid_mapping.csv"
HEADER = ("id_old", "id_new")


def read_mapping(path: Path) -> dict[str, str]:
    """The rows of a mapping file (empty if it does not exist)."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        rows = list(reader)
    if rows and tuple(rows[0]) == HEADER:
        rows = rows[1:]
    return {r[0]: r[1] for r in rows if len(r) >= 2}


def merge_mapping(path: Path, pairs: Mapping[str, str]) -> int:
    """Add ``pairs`` (old -> new) to the mapping file at ``path``; return its row count.

    A row whose old value is already there with another new value is replaced (the
    key changed, or a participant was relabelled) and the change is logged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name("." + path.name + ".lock")):
        rows = read_mapping(path)
        changed = sum(1 for k, v in pairs.items() if k in rows and rows[k] != v)
        if changed:
            log.warning("%s: %d existing row(s) replaced with new values", path.name, changed)
        if not pairs and path.is_file():
            return len(rows)
        rows.update(pairs)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        for old in sorted(rows):
            writer.writerow((old, rows[old]))
        write_text(path, buf.getvalue(), perms=0o600)
        return len(rows)
