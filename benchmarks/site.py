"""Benchmark: the site tools (issue 8) on one DICOM session, on loopback.

* inventory: headers per second of ``bidsdeid.site.inventory.collect``, against the
  bare header read every participant run does anyway (``dicom.index.read_header``);
* dry run: wall time of ``bidsdeid ... participant --dry-run``;
* receive: instances per second from dcmtk ``storescu`` into ``bidsdeid-receive``;
* send: instances per second from ``bidsdeid.site.send.send_files`` into dcmtk
  ``storescp`` (the files are the session's own: the sender does not care).

    python benchmarks/site.py [--session ../shared/data/dicom/philips_elition_r571]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SESSION = REPO.parent / "shared" / "data" / "dicom" / "philips_elition_r571"
NODELAY = {**os.environ, "TCP_NODELAY": "1"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dicom(root: Path) -> list[Path]:
    from bidsdeid.dicom.index import iter_files, read_header

    return [p for p in iter_files(root, []) if read_header(p).ds is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--session", type=Path, default=DEFAULT_SESSION)
    args = ap.parse_args()
    from bidsdeid.dicom.index import iter_files, read_header
    from bidsdeid.site import inventory
    from bidsdeid.site.dicomnet import Destination
    from bidsdeid.site.ledger import SentLedger
    from bidsdeid.site.send import outgoing, send_files

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study = root / "study"
        shutil.copytree(args.session, study / "sourcedata" / "sub-bench")
        files = _dicom(study / "sourcedata")
        n, mb = len(files), sum(p.stat().st_size for p in files) / 1e6
        print(f"session {args.session.name}: {n} DICOM files, {mb:.0f} MB")

        t = time.monotonic()
        for p in iter_files(study / "sourcedata", []):
            read_header(p)
        bare = time.monotonic() - t
        t = time.monotonic()
        inv = inventory.collect(study, ["bench"])
        took = time.monotonic() - t
        print(f"inventory: {n / took:.0f} headers/s ({took:.1f} s, {len(inv.files)} distinct "
              f"values); bare header read {n / bare:.0f} headers/s ({bare:.1f} s)")

        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "bidsdeid", str(study), str(root / "dry"),
                        "participant", "--dry-run"], check=True, capture_output=True)
        print(f"dry run: {time.monotonic() - t:.1f} s wall (process start included)")

        port = _port()
        received = root / "received"
        received.mkdir()
        recv = subprocess.Popen([sys.executable, "-m", "bidsdeid.site.receive", "--aet", "IN",
                                 "--port", str(port), "--host", "127.0.0.1", str(received)],
                                stdout=subprocess.PIPE, text=True)
        assert recv.stdout is not None
        recv.stdout.readline()
        t = time.monotonic()
        subprocess.run(["storescu", "-aec", "IN", "-R", "127.0.0.1", str(port),
                        *map(str, files)], check=True, env=NODELAY, capture_output=True)
        took = time.monotonic() - t
        recv.terminate()
        recv.communicate()
        print(f"receive (storescu -> bidsdeid-receive): {n / took:.0f} instances/s, "
              f"{mb / took:.0f} MB/s ({took:.1f} s)")

        port = _port()
        archive = root / "archive"
        archive.mkdir()
        scp = subprocess.Popen(["storescp", "-aet", "ARCH", "+B", "-od", str(archive),
                                str(port)], env=NODELAY, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        out = outgoing(study / "sourcedata", study)
        t = time.monotonic()
        report = send_files(out, Destination("ARCH", "127.0.0.1", port),
                            SentLedger(root / "sent.tsv"))
        took = time.monotonic() - t
        scp.terminate()
        scp.wait()
        print(f"send (bidsdeid send_files -> storescp): {report.count('sent') / took:.0f} "
              f"instances/s, {mb / took:.0f} MB/s ({took:.1f} s, {report.count('failed')} "
              "failed)")


if __name__ == "__main__":
    main()
