"""The inventory: every distinct text value in the input headers, with counts.

``bidsdeid BIDS_DIR OUTPUT_DIR participant --inventory-only`` or
``bidsdeid-inventory BIDS_DIR [--private-dir DIR] [--participant-label ...]`` reads
the headers of every DICOM file under ``sourcedata/sub-*`` (never the pixel data) and
the JSON sidecars under ``sub-*``, and writes ``PRIVATE_DIR/inventory/inventory.tsv``:

==============  ===================================================================
attribute       keyword (``PrivateCreator`` for private creators, ``private:<creator>``
                for private text elements, the field name for sidecar values)
tag             ``(0008,103E)``; ``(0029,00xx)`` for creators, ``(0029,xx10)`` for
                private elements; ``sidecar`` for JSON fields
vr              the value representation
value           the value (tabs, newlines and backslashes escaped as ``\\t`` ``\\n``
                ``\\\\``)
files           in how many files it occurs (a value repeated inside one file counts once)
participants    in how many participants it occurs
==============  ===================================================================

Text attributes are those of VR AE, LO, LT, PN, SH, ST, UC, UT and UR, at any nesting
level (descriptions, protocol names, institution, station, physicians' and operators'
names, free text, private creators). Code strings (CS), numbers, dates and UIDs are not
listed: they are the profile's business, not a vocabulary's. The table holds names and
other identifiers: it is written to the private dir only, and the terminal gets counts.
A site builds its vocabularies and its rules file (:mod:`bidsdeid.site.rules`) from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset

from bidsdeid.config import RunConfig
from bidsdeid.dicom.index import SkippedFile, iter_files, participant_dicom_root, read_header
from bidsdeid.errors import BidsdeidError, ExitCode, MissingInputError
from bidsdeid.progress import NULL_PROGRESS, Progress
from bidsdeid.utils.atomic import write_text

log = logging.getLogger("bidsdeid")

TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
FOLDER = "inventory"
FILE_NAME = "inventory.tsv"
COLUMNS = ("attribute", "tag", "vr", "value", "files", "participants")
Key = tuple[str, str, str, str]  # attribute, tag, vr, value


def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _values(value: Any) -> list[str]:
    if value is None or isinstance(value, bytes | bytearray):
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [str(v).strip() for v in value]
    return [str(value).strip()]


def _name(ds: Dataset, t: int) -> tuple[str, str]:
    """(attribute, tag text) of an element for the table."""
    group, elem_no = t >> 16, t & 0xFFFF
    if not group & 1:
        return keyword_for_tag(t) or "unknown", f"({group:04X},{elem_no:04X})"
    if elem_no <= 0xFF:
        return "PrivateCreator", f"({group:04X},00xx)"
    creator = ds.get((group << 16) | (elem_no >> 8))
    name = str(creator.value).strip() if creator is not None else "?"
    return f"private:{name}", f"({group:04X},xx{elem_no & 0xFF:02X})"


def _walk(ds: Dataset, found: set[Key]) -> None:
    """Add the text values of ``ds`` and its standard sequences to ``found``. Elements
    that cannot be text are skipped before their value is decoded."""
    for tag in list(ds.keys()):
        t = int(tag)
        group, elem_no = t >> 16, t & 0xFFFF
        vr = ds.get_item(tag).VR
        if group & 1:
            if 0x10 <= elem_no <= 0xFF:
                vr = "LO"  # a private creator
            elif vr in (None, "UN"):
                continue  # a private element of unknown VR: bytes, not text
        elif vr in (None, "UN"):
            try:
                vr = dictionary_VR(t)
            except KeyError:
                continue
        if vr == "SQ":
            if not group & 1:  # private sequences: vendor data the profile removes
                for item in ds[tag].value or []:
                    _walk(item, found)
            continue
        if vr not in TEXT_VRS:
            continue
        name, tag_text = _name(ds, t)
        for v in _values(ds[tag].value):
            if v:
                found.add((name, tag_text, vr, v))


def header_values(path: Path) -> set[Key] | None:
    """The distinct text values of one file's header (None: not a DICOM file)."""
    r = read_header(path)
    if r.ds is None:
        return None
    found: set[Key] = set()
    _walk(r.ds, found)
    return found


def _chunk(paths: list[Path]) -> list[set[Key] | None]:
    return [header_values(p) for p in paths]


@dataclass
class Inventory:
    """Distinct values and where they occur."""

    files: Counter[Key] = field(default_factory=Counter)
    participants: dict[Key, set[str]] = field(default_factory=dict)
    n_files: int = 0
    n_sidecars: int = 0
    n_skipped: int = 0
    labels: list[str] = field(default_factory=list)

    def add(self, found: set[Key], label: str) -> None:
        """The values of one file (each counted once per file)."""
        for key in found:
            self.files[key] += 1
            self.participants.setdefault(key, set()).add(label)

    def add_sidecar(self, meta: dict[str, Any], label: str) -> None:
        found: set[Key] = set()
        for key, value in meta.items():
            items = value if isinstance(value, list) else [value]
            for v in items:
                if isinstance(v, str) and v.strip():
                    found.add((str(key), "sidecar", "", v.strip()))
        self.n_sidecars += 1
        self.add(found, label)

    def to_tsv(self) -> str:
        lines = ["\t".join(COLUMNS)]
        for key in sorted(self.files, key=lambda k: (k[0], k[1], k[3])):
            attribute, tag, vr, value = key
            lines.append("\t".join([_escape(attribute), tag, vr, _escape(value),
                                    str(self.files[key]), str(len(self.participants[key]))]))
        return "\n".join(lines) + "\n"

    def attributes(self) -> int:
        return len({(k[0], k[1]) for k in self.files})


def _headers(paths: list[Path], nprocs: int) -> Iterator[set[Key] | None]:
    """:func:`header_values` of each path, in order, by ``nprocs`` processes."""
    if nprocs <= 1 or len(paths) < 64:
        yield from (header_values(p) for p in paths)
        return
    size = max(16, min(256, len(paths) // (nprocs * 8)))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    with ProcessPoolExecutor(max_workers=nprocs) as pool:
        for results in pool.map(_chunk, chunks):
            yield from results


def collect(bids_dir: Path, labels: list[str], progress: Progress = NULL_PROGRESS,
            nprocs: int = 1) -> Inventory:
    """Read every header and sidecar of the participants ``labels``."""
    inv = Inventory(labels=list(labels))
    jobs: list[tuple[str, Path]] = []
    for label in labels:
        root = participant_dicom_root(bids_dir, label)
        if root.is_dir():
            skipped: list[SkippedFile] = []
            jobs.extend((label, path) for path in iter_files(root, skipped))
    for i, ((label, _path), found) in enumerate(zip(jobs, _headers([p for _l, p in jobs],
                                                                  nprocs)), 1):
        progress.item("headers read", i, len(jobs))
        if found is None:
            inv.n_skipped += 1
            continue
        inv.n_files += 1
        inv.add(found, label)
    for label in labels:
        bids_root = bids_dir / f"sub-{label}"
        for side in sorted(bids_root.rglob("*.json")) if bids_root.is_dir() else []:
            try:
                meta = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                inv.n_skipped += 1
                continue
            if isinstance(meta, dict):
                inv.add_sidecar(meta, label)
    return inv


def write(inv: Inventory, private_dir: Path) -> Path:
    path = private_dir / FOLDER / FILE_NAME
    write_text(path, inv.to_tsv(), perms=0o600)
    return path


def _summary(inv: Inventory, path: Path) -> str:
    return (f"inventory: {len(inv.files)} distinct text values of {inv.attributes()} "
            f"attributes in {inv.n_files} DICOM headers and {inv.n_sidecars} sidecars of "
            f"{len(inv.labels)} participant(s) ({inv.n_skipped} files skipped) -> {path} "
            "(private: it holds names)")


def run(config: RunConfig, progress: Progress = NULL_PROGRESS) -> int:
    """``bidsdeid ... --inventory-only``: OUTPUT_DIR is not created."""
    from bidsdeid.bids.discover import discover, select

    found = discover(config.bids_dir)
    labels = select(found, config.participant_label)
    inv = collect(config.bids_dir, labels, progress, config.nprocs)
    path = write(inv, config.private_dir)
    print(f"bidsdeid: {_summary(inv, path)}")
    return int(ExitCode.SUCCESS)


def main(argv: list[str] | None = None) -> int:
    """``bidsdeid-inventory BIDS_DIR [--private-dir DIR] [--participant-label ...]``."""
    from bidsdeid.bids.discover import discover, select
    from bidsdeid.cli.parser import _label, _positive_int
    from bidsdeid.site.places import default_private_dir, private_dir

    p = argparse.ArgumentParser(
        prog="bidsdeid-inventory",
        description="List every distinct text value of the input headers (descriptions, "
                    "protocol names, institution, station, names, private creators) with "
                    "counts, in the private dir, to build a site rules file.")
    p.add_argument("bids_dir", type=Path, metavar="BIDS_DIR")
    p.add_argument("--private-dir", type=Path, metavar="DIR",
                   help="where inventory/inventory.tsv goes (default: "
                        "<BIDS_DIR>_deid_private, the private dir of bidsdeid BIDS_DIR "
                        "<BIDS_DIR>_deid)")
    p.add_argument("--participant-label", nargs="+", type=_label, metavar="LABEL")
    p.add_argument("--nprocs", type=_positive_int, default=1, metavar="N",
                   help="processes reading headers")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(ExitCode.USAGE) if exc.code == 2 else int(exc.code or 0)
    logging.basicConfig(format="bidsdeid-inventory: %(message)s", level=logging.WARNING)
    try:
        bids_dir = args.bids_dir.expanduser().absolute()
        if not bids_dir.is_dir():
            raise MissingInputError(f"BIDS_DIR {args.bids_dir} does not exist or is not a "
                                    "folder")
        private = private_dir(bids_dir, args.private_dir or default_private_dir(bids_dir))
        labels = select(discover(bids_dir), args.participant_label)
        inv = collect(bids_dir, labels, nprocs=args.nprocs)
        path = write(inv, private)
    except BidsdeidError as exc:
        print(f"bidsdeid-inventory: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"bidsdeid-inventory: {_summary(inv, path)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
