"""PACS in and out, on loopback only: bidsdeid-receive (pynetdicom SCP) fed by dcmtk's
storescu, the pipeline with --dicom-out --send-to a dcmtk storescp archive, retries and
the sent-ledger, and a receiver that no header value can steer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pydicom
import pytest
from conftest import run_cli
from pipeline_util import find_tokens
from pydicom.uid import generate_uid
from site_support import (
    PLANTED,
    TOKENS,
    all_elements,
    copy_session,
    dataset_bytes,
    dicom_files,
    free_port,
    python_module,
)

from bidsdeid.site.dicomnet import Destination
from bidsdeid.site.ledger import LEDGER, SentLedger
from bidsdeid.site.send import RetryPolicy, outgoing, send_files

pytestmark = [pytest.mark.needs_shared]
RECEIVED = re.compile(r"^sourcedata/sub-[a-z0-9]+/[0-9a-f]{12}/[0-9a-f]{12}/[0-9a-f]{16}\.dcm$")
NODELAY = {**os.environ, "TCP_NODELAY": "1"}  # dcmtk: no Nagle wait on each C-STORE


def _start_receiver(bids: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    proc = python_module("bidsdeid.site.receive", "--aet", "BIDSIN", "--port", str(port),
                         "--host", "127.0.0.1", *extra, bids)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening as BIDSIN" in line, line + (proc.stderr.read() if proc.stderr else "")
    return proc


def _by_sop(paths: list[Path]) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}


@pytest.mark.slow
def test_receive_deidentify_send_round_trip(shared_data: Path, tmp_path: Path) -> None:
    """Shared sessions (one with planted identifiers) -> storescu -> bidsdeid-receive ->
    bidsdeid --dicom-out --send-to -> storescp: what arrives is exactly the output."""
    source = tmp_path / "pacs"
    copy_session(shared_data, "ge", source / "ge", planted=True)
    copy_session(shared_data, "xa30", source / "xa30")
    sent = dicom_files(source)
    bids = tmp_path / "study"
    bids.mkdir()
    port_in, port_out = free_port(), free_port()
    receiver = _start_receiver(bids, port_in)
    try:
        scu = subprocess.run(["storescu", "-aec", "BIDSIN", "-R", "127.0.0.1", str(port_in),
                              *map(str, sent)], capture_output=True, text=True, env=NODELAY,
                             check=False)
        assert scu.returncode == 0, scu.stderr[-2000:]
    finally:
        receiver.send_signal(signal.SIGTERM)
        stdout, stderr = receiver.communicate(timeout=120)
    assert receiver.returncode == 0, stderr
    assert f"received {len(sent)} instance(s)" in stdout
    for token in TOKENS:
        assert token not in stdout + stderr
    received = dicom_files(bids)
    assert len(received) == len(sent) == 150 + 64
    for p in received:  # nothing from the headers in any name
        assert RECEIVED.match(str(p.relative_to(bids))), p
    assert len({p.relative_to(bids).parts[1] for p in received}) == 2  # two patients
    by_sop = _by_sop(sent)
    for sop, p in _by_sop(received).items():  # stored as storescu sent it (it re-encodes)
        a, b = pydicom.dcmread(p), pydicom.dcmread(by_sop[sop])
        assert dict(all_elements(a)) == dict(all_elements(b))
    private = tmp_path / "study_deid_private"
    assert PLANTED["PatientID"] in (private / "receive" / "patients.tsv").read_text()

    archive = tmp_path / "archive"
    archive.mkdir()
    storescp = subprocess.Popen(["storescp", "-aet", "ARCHIVE", "+B", "+uf", "-od",
                                 str(archive), str(port_out)], env=NODELAY,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        out = tmp_path / "study_deid"  # its private dir is the receiver's: one key
        args = (bids, out, "participant", "--deface-modalities", "none", "--dicom-out",
                "--send-to", f"ARCHIVE@127.0.0.1:{port_out}", "--nprocs", "2")
        run_cli(*args, check=0)
        published = sorted((out / "sourcedata").rglob("*.dcm"))
        arrived = sorted(p for p in archive.iterdir() if p.is_file())
        assert len(published) > 150  # the SR report is quarantined, not sent
        # a send retried after a lost acknowledgement (a loaded machine) may store an
        # instance twice under storescp's unique names: at least once, never missing
        assert len(arrived) >= len(published)
        pub_by_sop, arr_by_sop = _by_sop(published), _by_sop(arrived)
        assert sorted(pub_by_sop) == sorted(arr_by_sop)
        for sop, p in pub_by_sop.items():  # the dataset byte for byte; the file meta is
            assert dataset_bytes(arr_by_sop[sop]) == dataset_bytes(p)  # the archive's own
            meta_a, meta_p = (pydicom.dcmread(f, stop_before_pixels=True).file_meta
                              for f in (arr_by_sop[sop], p))
            for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                            "TransferSyntaxUID"):
                assert meta_a[keyword].value == meta_p[keyword].value
        assert find_tokens(archive, TOKENS) == []
        audits = sorted((private / "audit").glob("sub-*/send.json"))
        assert len(audits) == 2
        assert sum(json.loads(a.read_text())["sent"] for a in audits) == len(published)
        # a rerun: participants complete, every file already acknowledged: nothing sent
        run_cli(*args, check=0)
        assert sorted(p for p in archive.iterdir() if p.is_file()) == arrived
        for a in audits:
            report = json.loads(a.read_text())
            assert report["sent"] == 0 and report["failed"] == 0 and report["already_sent"]
    finally:
        storescp.terminate()
        storescp.communicate(timeout=60)


# -- sending: retries and the ledger -----------------------------------------------------------
class _FlakyArchive:
    """An in-process pynetdicom Storage SCP that fails the first ``fail_first`` tries of
    every instance (0xA700), then stores it."""

    def __init__(self, fail_first: int) -> None:
        from pynetdicom import AE, evt

        from bidsdeid.site.dicomnet import storage_scp_contexts

        self.fail_first = fail_first
        self.tries: dict[str, int] = {}
        self.stored: dict[str, bytes] = {}
        self.lock = threading.Lock()
        ae = AE(ae_title="FLAKY")
        storage_scp_contexts(ae)
        self.port = free_port()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self.store)])

    def store(self, event) -> int:
        sop = str(event.request.AffectedSOPInstanceUID)
        with self.lock:
            self.tries[sop] = self.tries.get(sop, 0) + 1
            if self.tries[sop] <= self.fail_first:
                return 0xA700
            self.stored[sop] = event.encoded_dataset(include_meta=False)
        return 0x0000

    def close(self) -> None:
        self.server.shutdown()


def _outgoing(shared_data: Path, tmp_path: Path, n: int = 4) -> tuple[Path, list]:
    root = tmp_path / "out" / "sourcedata" / "sub-x"
    root.mkdir(parents=True)
    for p in sorted((shared_data / "dicom/ge_mr750_fmri").glob("*.dcm"))[:n]:
        (root / p.name).write_bytes(p.read_bytes())
    return root, outgoing(root, tmp_path / "out")


FAST = RetryPolicy(attempts=3, backoff_s=0.01, timeout_s=10)


def test_unacknowledged_files_are_retried_and_acknowledged_ones_never_resent(
        shared_data: Path, tmp_path: Path) -> None:
    _root, files = _outgoing(shared_data, tmp_path)
    archive = _FlakyArchive(fail_first=1)
    ledger = SentLedger(tmp_path / "state" / LEDGER)
    dest = Destination("FLAKY", "127.0.0.1", archive.port)
    try:
        report = send_files(files, dest, ledger, FAST)
        assert [(f.result, f.attempts, f.status) for f in report.files] == [
            ("sent", 2, "0x0000")] * len(files)
        assert len(archive.stored) == len(files)
        for f in files:  # the bytes on the wire are the file's dataset bytes
            sop = str(pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID)
            raw = f.path.read_bytes()
            assert raw.endswith(archive.stored[sop])
        assert ledger.acknowledged(str(dest)) == {f.sha256 for f in files}
        tries = dict(archive.tries)
        again = send_files(files, dest, ledger, FAST)
        assert {f.result for f in again.files} == {"already sent"}
        assert archive.tries == tries  # nothing went on the wire
        # another archive has its own ledger entries: it gets everything
        assert ledger.acknowledged("OTHER@127.0.0.1:1") == set()
    finally:
        archive.close()


def test_files_that_stay_refused_are_reported_not_recorded(shared_data: Path,
                                                           tmp_path: Path) -> None:
    _root, files = _outgoing(shared_data, tmp_path, 2)
    archive = _FlakyArchive(fail_first=99)
    ledger = SentLedger(tmp_path / "state" / LEDGER)
    try:
        report = send_files(files, Destination("FLAKY", "127.0.0.1", archive.port), ledger,
                            FAST)
    finally:
        archive.close()
    assert [(f.result, f.attempts, f.status) for f in report.files] == [
        ("failed", 3, "0xA700")] * 2
    assert not ledger.path.exists()
    nobody = send_files(files, Destination("NOBODY", "127.0.0.1", free_port()), ledger, FAST)
    assert {(f.result, f.attempts) for f in nobody.files} == {("failed", 3)}
    assert "no association" in (nobody.files[0].error or "")


# -- receiving: refusals, id map, names no header can steer -------------------------------------
def _store(port: int, datasets: list[pydicom.Dataset]) -> list[int]:
    from pynetdicom import AE

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="BIDSIN")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def _variant(src: Path, patient_id: str | None) -> pydicom.Dataset:
    ds = pydicom.dcmread(src)
    if patient_id is None:
        del ds.PatientID
    else:
        ds.PatientID = patient_id
    ds.StudyInstanceUID = "../../../" + generate_uid()[:40]  # a "UID" that tries to be a path
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_the_receiver_files_safely_and_refuses_what_it_cannot_file(shared_data: Path,
                                                                  tmp_path: Path) -> None:
    src = min((shared_data / "dicom/ge_mr750_fmri").glob("*.dcm"))
    bids = tmp_path / "study"
    bids.mkdir()
    ids = tmp_path / "ids.tsv"
    ids.write_text("original\tnew\nPIDKNOWN1\tsite7\n")
    port = free_port()
    receiver = _start_receiver(bids, port, "--id-map", str(ids), "--idle-timeout", "1",
                               "--private-dir", str(tmp_path / "private"))
    statuses = _store(port, [_variant(src, "PIDKNOWN1"), _variant(src, "../../etc/passwd"),
                             _variant(src, None)])
    stdout, stderr = receiver.communicate(timeout=120)  # stops by itself when idle
    assert receiver.returncode == 0, stderr
    assert statuses == [0x0000, 0xC002, 0xC001]
    [stored] = dicom_files(bids)
    assert RECEIVED.match(str(stored.relative_to(bids)))
    assert stored.relative_to(bids).parts[1] == "sub-site7"
    assert "refused 2" in stdout and "etc" not in stdout + stderr
    assert {p.name for p in tmp_path.iterdir()} == {"study", "ids.tsv", "private"}
    # without an id map, the label is a keyed pseudonym: the odd PatientID steers nothing
    port = free_port()
    receiver = _start_receiver(bids, port, "--idle-timeout", "1", "--private-dir",
                               str(tmp_path / "private"))
    assert _store(port, [_variant(src, "../../etc/passwd")]) == [0x0000]
    receiver.communicate(timeout=120)
    files = dicom_files(bids)
    assert len(files) == 2 and all(RECEIVED.match(str(p.relative_to(bids))) for p in files)
    assert {p.name for p in tmp_path.iterdir()} == {"study", "ids.tsv", "private"}
