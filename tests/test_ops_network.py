"""No network at run time: compute nodes and ``docker run --network none`` have none.

Two independent proofs on real data with defacing on: a run in a network namespace with
only a down loopback (covers the subprocesses too: dcm2niix, the BIDS validator), and an
in-process run where any socket connect or name lookup raises (covers every Python
library: templateflow, nipype's telemetry, matplotlib, pybids).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ops_support import make_study

from bidsdeid.cli.run import main

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]


def _unshare_problem() -> str | None:
    if os.geteuid() != 0:
        return "unshare -n needs root here"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare -n fails: {probe.stderr.strip()}"


def test_participant_and_group_run_in_a_network_namespace(shared_data: Path, tmp_path: Path,
                                                          template_env: Path) -> None:
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    study = make_study(shared_data, tmp_path / "study", {"nv": "t1", "ge": "ge"})
    out = tmp_path / "out"
    probe = subprocess.run(["unshare", "-n", sys.executable, "-c",
                            "import socket; socket.create_connection(('1.1.1.1', 53), 2)"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "unreachable" in probe.stderr  # really no network
    for level, extra in (("participant", ["--sloppy"]), ("group", [])):
        proc = subprocess.run(["unshare", "-n", sys.executable, "-m", "bidsdeid", str(study),
                               str(out), level, *extra], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "sub-nv/anat/sub-nv_T1w.nii.gz").is_file()
    assert (tmp_path / "out_private/reports/bids_validator.json").is_file()


class NetworkUsed(AssertionError):
    pass


def test_no_socket_is_ever_connected_in_process(shared_data: Path, tmp_path: Path,
                                                template_env: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def guard(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise NetworkUsed(f"{what} called: bidsdeid must not use the network")
        return guard

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse(f"socket.{name}"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "gethostbyname", refuse("gethostbyname"))
    with pytest.raises(NetworkUsed):  # the guard works
        socket.create_connection(("example.org", 80))
    attempts.clear()
    study = make_study(shared_data, tmp_path / "study", {"nv": "t1", "ge": "ge"})
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--sloppy"]) == 0
    assert main([str(study), str(out), "group"]) == 0
    assert attempts == []
    assert (out / "sub-nv/anat/sub-nv_T1w.nii.gz").is_file()
