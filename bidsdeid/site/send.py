"""``--send-to AET@HOST:PORT``: send a participant's de-identified DICOM to an archive.

After a participant completes (or is found complete on a rerun), every file of
``OUTPUT_DIR/sourcedata/sub-<label>/`` is sent with C-STORE (pynetdicom), exactly as
published: the file's dataset bytes go on the wire undecoded, in the transfer syntax
they were written in. Then:

* retries: a file that is not acknowledged (a failure status, no answer, a lost or
  refused association) is tried again, up to :attr:`RetryPolicy.attempts` times, with
  a doubling pause between rounds;
* ledger: each acknowledged file is recorded in the participant's sent-ledger
  (:mod:`.ledger`) at once, so a rerun never sends it again;
* audit: ``PRIVATE_DIR/audit/sub-<label>/send.json`` lists every file with its result
  (sent, already sent, failed), the DIMSE status and the number of attempts.

Files that stay unacknowledged make the participant's run fail (exit 1) with one line
naming the participant and the destination; a rerun sends only those.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid.config import RunConfig
from bidsdeid.site.dicomnet import CALLING_AET, Destination, acknowledged, no_delay, quiet
from bidsdeid.site.ledger import LEDGER, SentLedger
from bidsdeid.utils.atomic import write_json
from bidsdeid.utils.paths import file_sha256

log = logging.getLogger("bidsdeid")
_MAX_CONTEXTS = 100  # of the 128 presentation contexts an association may propose


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: float = 2.0  # pause before the 2nd round; doubled for each later round
    timeout_s: float = 30.0  # ACSE, DIMSE and network timeouts


@dataclass
class Outgoing:
    rel: str  # OUTPUT_DIR-relative path
    path: Path
    sha256: str
    sop_class: str
    transfer_syntax: str


@dataclass
class FileResult:
    file: str
    sha256: str
    result: str  # sent | already sent | failed
    status: str | None = None  # last DIMSE status, e.g. 0x0000
    attempts: int = 0
    error: str | None = None


@dataclass
class SendReport:
    destination: str
    files: list[FileResult] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for f in self.files if f.result == result)

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "sent": self.count("sent"),
                "already_sent": self.count("already sent"), "failed": self.count("failed"),
                "files": [asdict(f) for f in self.files]}


def outgoing(root: Path, rel_root: Path) -> list[Outgoing]:
    """Every DICOM file under ``root`` (sorted), with what a presentation context needs."""
    from pydicom.filereader import read_file_meta_info

    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        meta = read_file_meta_info(path)
        out.append(Outgoing(str(path.relative_to(rel_root)), path, file_sha256(path),
                            str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
    return out


def _batches(files: list[Outgoing]) -> list[list[Outgoing]]:
    """Consecutive groups whose (SOP class, transfer syntax) pairs fit one association."""
    batches: list[list[Outgoing]] = []
    pairs: set[tuple[str, str]] = set()
    for f in files:
        pair = (f.sop_class, f.transfer_syntax)
        if not batches or (pair not in pairs and len(pairs) >= _MAX_CONTEXTS):
            batches.append([])
            pairs = set()
        pairs.add(pair)
        batches[-1].append(f)
    return batches


def _associate(dest: Destination, batch: list[Outgoing], policy: RetryPolicy) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=CALLING_AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = policy.timeout_s
    for sop, ts in sorted({(f.sop_class, f.transfer_syntax) for f in batch}):
        ae.add_requested_context(sop, ts)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.aet)
    if not assoc.is_established:
        return None
    no_delay(assoc)
    return assoc


def send_files(files: list[Outgoing], dest: Destination, ledger: SentLedger,
               policy: RetryPolicy = RetryPolicy()) -> SendReport:
    """Send what the ledger does not hold yet; retry; record (see module docstring)."""
    from pynetdicom import _config

    quiet()
    _config.STORE_SEND_CHUNKED_DATASET = True  # the file's bytes, not a re-encoding
    name = str(dest)
    done = ledger.acknowledged(name)
    results = {f.rel: FileResult(f.rel, f.sha256, "already sent" if f.sha256 in done
                                 else "failed") for f in files}
    pending = [f for f in files if f.sha256 not in done]
    for round_no in range(policy.attempts):
        if not pending:
            break
        if round_no:
            time.sleep(policy.backoff_s * 2 ** (round_no - 1))
        still: list[Outgoing] = []
        for batch in _batches(pending):
            still.extend(_send_batch(batch, dest, ledger, policy, results))
        pending = still
    report = SendReport(name, [results[f.rel] for f in files])
    return report


def _send_batch(batch: list[Outgoing], dest: Destination, ledger: SentLedger,
                policy: RetryPolicy, results: dict[str, FileResult]) -> list[Outgoing]:
    """Send one batch on one association; return the files still not acknowledged."""
    try:
        assoc = _associate(dest, batch, policy)
    except Exception as exc:  # noqa: BLE001 - any network problem is a failed attempt
        assoc = None
        log.debug("association with %s failed: %s", dest, exc)
    if assoc is None:
        for f in batch:
            results[f.rel].attempts += 1
            results[f.rel].error = "no association (the archive refused or did not answer)"
        return list(batch)
    still: list[Outgoing] = []
    try:
        for i, f in enumerate(batch):
            r = results[f.rel]
            if not assoc.is_established:
                still.extend(batch[i:])
                for g in batch[i:]:
                    results[g.rel].error = "association lost"
                break
            r.attempts += 1
            try:
                status = assoc.send_c_store(f.path)
            except ValueError:
                r.error = ("the archive accepted no presentation context for this SOP class "
                           "and transfer syntax")
                still.append(f)
                continue
            except (AttributeError, OSError) as exc:
                r.error = f"cannot be sent ({type(exc).__name__})"
                still.append(f)
                continue
            code = getattr(status, "Status", None)
            r.status = f"0x{code:04X}" if code is not None else None
            if acknowledged(code):
                ledger.record(str(dest), f.sha256, f.rel, r.status or "")
                r.result, r.error = "sent", None
            else:
                r.error = "not acknowledged" if code is not None else "no answer"
                still.append(f)
    finally:
        if assoc.is_established:
            assoc.release()
    return still


def send_participant(config: RunConfig, input_label: str, output_label: str,
                     policy: RetryPolicy = RetryPolicy()) -> SendReport:
    """Send ``sub-<output_label>``'s --dicom-out files; ledger and audit per participant."""
    assert config.send_to is not None
    dest = Destination.parse(config.send_to)
    root = config.output_dir / "sourcedata" / f"sub-{output_label}"
    files = outgoing(root, config.output_dir) if root.is_dir() else []
    ledger = SentLedger(config.state_dir / f"sub-{input_label}" / LEDGER)
    report = send_files(files, dest, ledger, policy)
    write_json(config.audit_dir / f"sub-{input_label}" / "send.json", report.to_json(),
               perms=0o600)
    log.info("[sub-%s] sent %d file(s) to %s (%d already sent, %d failed)", input_label,
             report.count("sent"), dest, report.count("already sent"), report.count("failed"))
    return report


def after_participant(config: RunConfig, result: Any) -> None:
    """The hook :func:`bidsdeid.participant.run` calls: send, and fail the participant's
    result (one line) if files stay unacknowledged."""
    if not config.send_to or result.status not in ("complete", "skipped"):
        return
    if not result.output_label:
        return
    try:
        report = send_participant(config, result.input_label, result.output_label)
    except Exception as exc:
        log.debug("sending sub-%s failed", result.input_label, exc_info=True)
        result.status = "failed"
        result.problems.append(f"error: [send] sub-{result.input_label}: sending failed "
                               f"({type(exc).__name__}); details in the log")
        return
    failed = report.count("failed")
    if failed:
        result.status = "failed"
        result.problems.append(
            f"error: [send] sub-{result.input_label}: {failed} of {len(report.files)} DICOM "
            f"file(s) not acknowledged by {report.destination} after "
            f"{RetryPolicy().attempts} attempts (details in the audit); a rerun sends only "
            "those")
