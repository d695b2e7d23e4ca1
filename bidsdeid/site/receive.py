"""``bidsdeid-receive``: a DICOM Storage SCP that files incoming studies into BIDS_DIR.

::

    bidsdeid-receive --aet AET --port N BIDS_DIR [--id-map FILE] [--idle-timeout S]
                     [--private-dir DIR] [--host ADDRESS]

Every instance received with C-STORE (pynetdicom; any storage SOP class, any transfer
syntax, the bytes as sent) is written atomically to::

    BIDS_DIR/sourcedata/sub-<label>/<study>/<series>/<instance>.dcm

where nothing comes from the headers as written: ``<label>`` is the new label the id
map gives the instance's PatientID, else a keyed pseudonym of the PatientID
(:meth:`ProjectKey.pseudonym`, never derived from the patient's name); ``<study>``,
``<series>`` and ``<instance>`` are keyed tokens of the study, series and SOP instance
UIDs. So no header value can name a path or climb out of it (``../``), and an instance
sent twice lands on the same file. An instance without PatientID or UIDs, or whose
PatientID has no entry in a given id map, is refused (status 0xC0xx) and counted.

The key is the project key of the private dir (default ``<BIDS_DIR>_deid_private``, the
private dir ``bidsdeid`` uses for OUTPUT_DIR ``<BIDS_DIR>_deid``), so the labels stay
the same in every later session. ``PRIVATE_DIR/receive/patients.tsv`` links PatientIDs to
labels (private). The receiver stops on SIGINT or SIGTERM, or after ``--idle-timeout``
seconds without an association, and prints what it received (labels and counts only).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bidsdeid.errors import BidsdeidError, ExitCode, MissingInputError, UsageError
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.site import idmap as idmap_mod
from bidsdeid.site.dicomnet import check_aet, no_delay, quiet, storage_scp_contexts
from bidsdeid.utils.atomic import remove_stray_temporaries, write_bytes, write_text
from bidsdeid.utils.locks import file_lock

log = logging.getLogger("bidsdeid")
REFUSED_NO_ID = 0xC001  # no PatientID
REFUSED_NO_ENTRY = 0xC002  # no id-map entry for the PatientID
REFUSED_NO_UID = 0xC003  # no Study/Series/SOP Instance UID
FAILED_WRITE = 0xA700  # out of resources: the file could not be written
PATIENTS = "patients.tsv"


class Receiver:
    """Files instances (see the module docstring); thread-safe (one thread per
    association)."""

    def __init__(self, bids_dir: Path, key: ProjectKey, id_map: idmap_mod.IdMap | None,
                 private_dir: Path) -> None:
        self.root = bids_dir / "sourcedata"
        self.key = key
        self.id_map = id_map
        self.private_dir = private_dir
        self.lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.received: Counter[str] = Counter()  # label -> instances
        self.refused: Counter[str] = Counter()  # reason -> instances
        self.patients: dict[str, str] = {}  # PatientID -> label (private)

    def touch(self, _event: Any = None) -> None:
        self.last_activity = time.monotonic()

    def opened(self, event: Any) -> None:
        self.touch()
        no_delay(event.assoc)

    def label(self, patient_id: str) -> str | None:
        if self.id_map is not None:
            entry = self.id_map.for_patient_id(patient_id)
            return entry.label if entry is not None else None
        return self.key.pseudonym("received-patient", patient_id)

    def path_for(self, label: str, study: str, series: str, sop: str) -> Path:
        token = self.key.token
        return (self.root / f"sub-{label}" / token("received-study", study, 12)
                / token("received-series", series, 12)
                / f"{token('received-instance', sop, 16)}.dcm")

    def handle_store(self, event: Any) -> int:
        """The C-STORE handler: 0x0000 when the file is written."""
        self.touch()
        ds = event.dataset
        pid = str(ds.get("PatientID", "") or "").strip()
        if not pid:
            return self._refuse("no PatientID", REFUSED_NO_ID)
        label = self.label(pid)
        if label is None:
            return self._refuse("PatientID not in the id map", REFUSED_NO_ENTRY)
        uids = [str(ds.get(k, "") or "").strip() for k in
                ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
        if not all(uids):
            return self._refuse("a UID is missing", REFUSED_NO_UID)
        path = self.path_for(label, *uids)
        try:
            write_bytes(path, event.encoded_dataset(include_meta=True))
        except OSError as exc:
            log.error("cannot write a received instance (%s)", exc.strerror or exc)
            return self._refuse("could not be written", FAILED_WRITE)
        with self.lock:
            self.received[label] += 1
            self.patients[pid] = label
        return 0x0000

    def _refuse(self, reason: str, status: int) -> int:
        with self.lock:
            self.refused[reason] += 1
        return status

    def save_patients(self) -> None:
        """Merge PatientID -> label into ``PRIVATE_DIR/receive/patients.tsv`` (0600)."""
        if not self.patients:
            return
        path = self.private_dir / "receive" / PATIENTS
        with file_lock(self.private_dir / "receive" / ".patients.lock"):
            rows: dict[str, str] = {}
            try:
                for rec in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")),
                                          delimiter="\t"):
                    rows[rec["patient_id"]] = rec["participant_id"]
            except (FileNotFoundError, KeyError):
                pass
            rows.update({pid: f"sub-{label}" for pid, label in self.patients.items()})
            lines = ["patient_id\tparticipant_id"] + [f"{p}\t{lab}" for p, lab in
                                                      sorted(rows.items())]
            write_text(path, "\n".join(lines) + "\n", perms=0o600)

    def summary(self) -> str:
        n = sum(self.received.values())
        parts = ", ".join(f"sub-{lab} {c}" for lab, c in sorted(self.received.items()))
        refused = sum(self.refused.values())
        why = "; ".join(f"{r}: {c}" for r, c in sorted(self.refused.items()))
        return (f"received {n} instance(s) into {self.root}"
                + (f" ({parts})" if parts else "")
                + (f"; refused {refused} ({why})" if refused else ""))


def serve(receiver: Receiver, aet: str, host: str, port: int, idle_timeout: float | None,
          stop: threading.Event) -> None:
    """Run the SCP until ``stop`` is set or the receiver has been idle long enough."""
    from pynetdicom import AE, VerificationPresentationContexts, evt

    quiet()
    ae = AE(ae_title=aet)
    ae.require_called_aet = True
    storage_scp_contexts(ae)
    for cx in VerificationPresentationContexts:
        ae.add_supported_context(str(cx.abstract_syntax))
    handlers: list[Any] = [(evt.EVT_C_STORE, receiver.handle_store),
                           (evt.EVT_CONN_OPEN, receiver.opened),
                           (evt.EVT_CONN_CLOSE, receiver.touch)]
    server = ae.start_server((host, port), block=False, evt_handlers=handlers)
    assert server is not None  # block=False returns the server
    try:
        print(f"bidsdeid-receive: listening as {aet} on {host}:{port}", flush=True)
        while not stop.wait(0.2):
            idle = time.monotonic() - receiver.last_activity
            if idle_timeout is not None and not server.active_associations and \
                    idle >= idle_timeout:
                break
    finally:
        server.shutdown()


def _parser() -> argparse.ArgumentParser:
    from bidsdeid.cli.parser import _existing_file, _positive_int

    p = argparse.ArgumentParser(
        prog="bidsdeid-receive",
        description="A DICOM Storage SCP that files incoming studies into "
                    "BIDS_DIR/sourcedata/sub-<label>/ under names that carry nothing from "
                    "the headers (label from --id-map, else a keyed pseudonym of the "
                    "PatientID). Stops on SIGINT/SIGTERM or after --idle-timeout.")
    p.add_argument("bids_dir", type=Path, metavar="BIDS_DIR")
    p.add_argument("--aet", required=True, help="this receiver's AE title")
    p.add_argument("--port", required=True, type=_positive_int, help="TCP port to listen on")
    p.add_argument("--host", default="0.0.0.0",
                   help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--id-map", type=_existing_file, metavar="FILE",
                   help="TSV/CSV PatientID -> new label (see bidsdeid --id-map); instances "
                        "of other patients are refused")
    p.add_argument("--idle-timeout", type=float, metavar="S",
                   help="stop after S seconds without an association (default: run until "
                        "SIGINT/SIGTERM)")
    p.add_argument("--private-dir", type=Path, metavar="DIR",
                   help="holds the key and the PatientID -> label table (default: "
                        "<BIDS_DIR>_deid_private)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    from bidsdeid.site.places import private_dir

    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(ExitCode.USAGE) if exc.code == 2 else int(exc.code or 0)
    logging.basicConfig(format="bidsdeid-receive: %(message)s",
                        level=[logging.WARNING, logging.INFO, logging.DEBUG][
                            min(args.verbose, 2)])
    try:
        aet = check_aet(args.aet)
        if args.port > 65535:
            raise UsageError(f"--port {args.port}: a TCP port is 1-65535")
        if args.idle_timeout is not None and args.idle_timeout <= 0:
            raise UsageError("--idle-timeout must be a positive number of seconds")
        bids_dir = args.bids_dir.expanduser().absolute()
        if not bids_dir.is_dir():
            raise MissingInputError(f"BIDS_DIR {args.bids_dir} does not exist or is not a "
                                    "folder")
        private = private_dir(bids_dir, args.private_dir)
        key = ProjectKey.load_or_create(private)
        id_map = idmap_mod.load(args.id_map) if args.id_map else None
        receiver = Receiver(bids_dir, key, id_map, private)
        remove_stray_temporaries(receiver.root)  # a killed receiver's half-written files
    except BidsdeidError as exc:
        print(f"bidsdeid-receive: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: stop.set())
    try:
        serve(receiver, aet, args.host, args.port, args.idle_timeout, stop)
    except OSError as exc:
        print(f"bidsdeid-receive: cannot listen on {args.host}:{args.port} "
              f"({exc.strerror or exc})", file=sys.stderr)
        return int(ExitCode.FAILURE)
    finally:
        receiver.save_patients()
    print(f"bidsdeid-receive: {receiver.summary()}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
