"""Run the bidsdeid CLI and SIGKILL it at a known point (for the crash tests).

    python crash_driver.py POINT -- BIDS_DIR OUTPUT_DIR participant [options]

The process kills itself with SIGKILL (no cleanup, no ``finally``, no atexit: what a
node failure or the OOM killer does) at POINT, a monkeypatched spot of the pipeline, so
the test knows exactly where the run stopped (no timing, no polling):

* ``before:<stage name>`` - as the stage starts, e.g. ``before:copy BIDS inputs`` is
  right after every DICOM series was converted;
* ``dicom-files:<k>``     - after ``k`` DICOM files were de-identified and staged
  (``--dicom-out``);
* ``deface-write:<k>``    - after the ``k``-th defaced image was staged;
* ``publish-half:<k>``    - the ``k``-th file published into OUTPUT_DIR is half
  written under its temporary name, then the process dies;
* ``shared-files:<k>``    - as the dataset files are rebuilt for the ``k``-th time
  (the participant's completion marker is already written).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(k: int, fn: Callable[..., Any], after: bool = True) -> Callable[..., Any]:
    calls = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if not after and calls[0] == k:
            die()
        result = fn(*args, **kwargs)
        if after and calls[0] == k:
            die()
        return result

    return wrapped


def install(point: str) -> None:
    kind, _, arg = point.partition(":")
    if kind == "before":
        from bidsdeid import participant

        stages = participant._stages

        def killing_stages() -> list[tuple[str, Callable[..., None]]]:
            out = []
            for name, fn in stages():
                if name == arg:
                    out.append((name, lambda ctx: die()))
                else:
                    out.append((name, fn))
            return out

        participant._stages = killing_stages  # type: ignore[assignment]
    elif kind == "dicom-files":
        from bidsdeid.dicom import stage as dicom_stage

        run_jobs = dicom_stage.run_jobs

        def killing_jobs(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for n, result in enumerate(run_jobs(*args, **kwargs), 1):
                yield result
                if n == int(arg):
                    die()

        dicom_stage.run_jobs = killing_jobs  # type: ignore[assignment]
    elif kind == "deface-write":
        from bidsdeid.deface import stage as deface_stage

        deface_stage._write = _counting(int(arg), deface_stage._write)  # type: ignore
    elif kind == "publish-half":
        from bidsdeid import publish
        from bidsdeid.utils.atomic import atomic_open

        copy_file = publish.copy_file
        calls = [0]

        def half_copy(src: Any, dst: Any, **kwargs: Any) -> None:
            calls[0] += 1
            if calls[0] == int(arg):
                data = Path(src).read_bytes()
                with atomic_open(dst, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    die()
            copy_file(src, dst, **kwargs)

        publish.copy_file = half_copy  # type: ignore[assignment]
    elif kind == "shared-files":
        from bidsdeid.bids import dataset

        dataset.update_shared_files = _counting(  # type: ignore[assignment]
            int(arg), dataset.update_shared_files, after=False)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main() -> int:
    point, sep, *args = sys.argv[1:]
    assert sep == "--"
    install(point)
    from bidsdeid.cli.run import main as bidsdeid_main

    return bidsdeid_main(args)


if __name__ == "__main__":
    sys.exit(main())
