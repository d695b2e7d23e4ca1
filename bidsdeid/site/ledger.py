"""The sent-ledger: which output files an archive has acknowledged (``--send-to``).

``PRIVATE_DIR/state/sub-<label>/sent.tsv``, one line per acknowledged C-STORE:
destination (``AET@HOST:PORT``), the sha256 of the file's bytes, its OUTPUT_DIR path
and the status. Keyed by destination and sha256, so a rerun sends only what no archive
acknowledged yet, a changed file (new settings, new key) is sent again, and another
archive gets everything. Lines are appended one at a time with ``O_APPEND`` and synced,
so a crash loses at most the line being written (that file is sent again: archives
take a repeated SOP instance as an update). A damaged line is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

LEDGER = "sent.tsv"
HEADER = "destination\tsha256\tfile\tstatus\n"


class SentLedger:
    """The ledger of one participant (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def acknowledged(self, destination: str) -> set[str]:
        """sha256 of every file ``destination`` acknowledged."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        done = set()
        for line in text.splitlines()[1:]:
            cells = line.split("\t")
            if len(cells) == 4 and cells[0] == destination and len(cells[1]) == 64:
                done.add(cells[1])
        return done

    def record(self, destination: str, sha256: str, rel: str, status: str) -> None:
        """Append one acknowledged file (durably)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            line = f"{destination}\t{sha256}\t{rel.replace(chr(9), ' ')}\t{status}\n"
            os.write(fd, ((HEADER if fresh else "") + line).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
