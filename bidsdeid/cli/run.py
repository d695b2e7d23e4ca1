"""``bidsdeid`` entry point: parse, check, set up, run a level, exit with a meaning.

Users see one line per problem and an exit code (see ``bidsdeid --help``); the full
details, tracebacks included, go to ``PRIVATE_DIR/logs/<run id>/bidsdeid.log``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bidsdeid import __version__
from bidsdeid.cli.parser import build_parser
from bidsdeid.config import DefaceOptions, DeidOptions, RunConfig
from bidsdeid.errors import (
    BidsdeidError,
    CannotCreateOutput,
    ExitCode,
    MissingInputError,
    NotImplementedOption,
    UsageError,
    worst,
)
from bidsdeid.utils.paths import is_inside

log = logging.getLogger("bidsdeid")

# Options of the interface that this build cannot honour yet: using one exits 64 with a
# message instead of being silently ignored. Each entry goes when its feature lands.
NOT_IMPLEMENTED: dict[str, str] = {}
"""Options the parser knows but this version does not do (dest -> flag): they exit 64
saying so, never ignored silently. Empty in this version."""


def _abs(p: Path) -> Path:
    return Path(os.path.abspath(p.expanduser()))


def config_from_args(args: object) -> RunConfig:
    """Build the run config and check the places (exit 64/66 on a bad combination)."""
    a = args  # argparse.Namespace
    for dest, flag in NOT_IMPLEMENTED.items():
        if getattr(a, dest, None):
            raise NotImplementedOption(flag)
    bids_dir = _abs(a.bids_dir)
    if not bids_dir.is_dir():
        raise MissingInputError(f"BIDS_DIR {a.bids_dir} does not exist or is not a folder")
    output_dir = _abs(a.output_dir)
    private_dir = _abs(a.private_dir) if a.private_dir else output_dir.with_name(
        output_dir.name + "_private")
    work_dir = _abs(a.work_dir) if a.work_dir else private_dir / "work"
    places = {"OUTPUT_DIR": output_dir, "private dir": private_dir, "work dir": work_dir}
    for name, place in places.items():
        if is_inside(place, bids_dir) or is_inside(bids_dir, place):
            raise UsageError(
                f"the {name} ({place}) must not be inside BIDS_DIR ({bids_dir}) or contain it: "
                f"bidsdeid never writes into its input. Try {bids_dir.parent / (bids_dir.name + '_deid')}")
    if is_inside(private_dir, output_dir) or is_inside(output_dir, private_dir):
        raise UsageError(f"the private dir ({private_dir}) and OUTPUT_DIR ({output_dir}) must "
                         "be separate: the private dir holds identifying data and must never "
                         "be shared with the output")
    if is_inside(work_dir, output_dir):
        raise UsageError(f"the work dir ({work_dir}) must not be inside OUTPUT_DIR: it holds "
                         "identifying intermediate files")
    if a.drop_demographics and a.include_sex:
        raise UsageError("--drop-demographics and --include-sex contradict each other")
    if a.id_map and a.relabel != "keep":
        raise UsageError("--id-map and --relabel are alternatives: give one of them")
    if a.send_to and not a.dicom_out:
        raise UsageError("--send-to sends the --dicom-out files: add --dicom-out")
    if a.dry_run and a.inventory_only:
        raise UsageError("--dry-run and --inventory-only are alternatives: give one of them")
    if (a.dry_run or a.inventory_only) and a.analysis_level != "participant":
        raise UsageError("--dry-run and --inventory-only work at the participant level")
    if a.template and not 1 <= len(a.template) <= 3:
        raise UsageError("--template takes HEAD [FACE_MASK [BRAIN_MASK]]")
    if a.deface_modalities:
        _check_deface_modalities(a.deface_modalities)
    filters = a.bids_filter_file
    deid = DeidOptions(
        retain_safe_private=a.retain_safe_private,
        retain_uids=a.retain_uids,
        retain_device_identity=a.retain_device_identity,
        retain_institution_identity=a.retain_institution_identity,
        retain_patient_characteristics=a.retain_patient_characteristics,
        retain_longitudinal=a.retain_longitudinal,
        clean_descriptors=a.clean_descriptors,
        clean_structured_content=a.clean_structured_content,
        clean_graphics=a.clean_graphics,
    )
    _site_files(a, deid)
    deface = DefaceOptions(
        modalities=a.deface_modalities,
        age_months=a.age_months,
        template=[str(_abs(Path(t))) for t in a.template] if a.template else None,
        template_registry=str(a.template_registry) if a.template_registry else None,
        remove_ears=a.remove_ears,
        method="reface" if a.reface else "zero",
        sloppy=a.sloppy,
    )
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    return RunConfig(
        bids_dir=bids_dir, output_dir=output_dir, analysis_level=a.analysis_level,
        private_dir=private_dir, work_dir=work_dir,
        participant_label=a.participant_label, session_label=a.session_label,
        bids_filter_file=Path(filters["path"]) if filters else None,
        bids_filters=filters["filters"] if filters else None,
        nprocs=a.nprocs, omp_nthreads=a.omp_nthreads or a.nprocs, mem_gb=a.mem_gb,
        skip_bids_validation=a.skip_bids_validation, verbosity=a.verbose,
        dicom_out=a.dicom_out, relabel=a.relabel, id_map=a.id_map,
        include_sex=a.include_sex, drop_demographics=a.drop_demographics,
        mapping_file=a.mapping_file, rules_file=a.rules_file, force=a.force,
        dry_run=a.dry_run, inventory_only=a.inventory_only, send_to=a.send_to,
        deid=deid, deface=deface, run_id=run_id,
    )


def _check_deface_modalities(values: list[str]) -> None:
    """Anatomical BIDS suffixes, or ``none`` alone (exit 64 otherwise): a misspelt
    suffix (``T1`` for ``T1w``) would otherwise leave every image undefaced."""
    from bidsdeid.context import ANAT_SUFFIXES

    known = {s.lower(): s for s in ANAT_SUFFIXES}
    lowered = [v.lower() for v in values]
    if "none" in lowered:
        if len(lowered) > 1:
            raise UsageError("--deface-modalities none stands alone (it turns defacing off)")
        return
    bad = [v for v in values if v.lower() not in known]
    if bad:
        raise UsageError(f"--deface-modalities: not an anatomical BIDS suffix: "
                         f"{', '.join(bad)} (give some of {', '.join(ANAT_SUFFIXES)}; or "
                         "none alone)")


def _site_files(a: object, deid: DeidOptions) -> None:
    """Check --rules and --id-map before anything runs (exit 64 naming file and line);
    warn about rules that keep what the profile would not keep."""
    if getattr(a, "rules_file", None):
        from bidsdeid.site import rules

        site_rules = rules.load(a.rules_file)  # type: ignore[attr-defined]
        deid.site_rules = site_rules.method_note()
        for line in site_rules.warnings(deid):
            log.warning("%s", line)
    if getattr(a, "id_map", None):
        from bidsdeid.site import idmap

        idmap.load(a.id_map)  # type: ignore[attr-defined]
    if getattr(a, "send_to", None):
        from bidsdeid.site.dicomnet import Destination

        Destination.parse(a.send_to)  # type: ignore[attr-defined]


def prepare_places(config: RunConfig) -> None:
    """Create the private dir (0700) with its log dir, and the work dir (exit 73 if not;
    a dry run and an inventory need no work dir)."""
    try:
        config.private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(config.private_dir, 0o700)
        config.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (config.dry_run or config.inventory_only):
            config.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CannotCreateOutput(f"cannot create {exc.filename or config.private_dir}: "
                                 f"{exc.strerror or exc}") from exc


def setup_logging(verbosity: int, log_file: Path | None) -> None:
    """Console: warnings (-v info, -vv debug). Log file: everything, tracebacks too."""
    root = logging.getLogger("bidsdeid")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)])
    console.setFormatter(logging.Formatter("bidsdeid: %(message)s"))
    root.addHandler(console)
    if log_file is not None:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        os.chmod(log_file, 0o600)
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(fh)
    root.propagate = False
    # Python warnings (pydicom's quote header values: PHI) go to the private log only
    logging.captureWarnings(True)
    warnings_log = logging.getLogger("py.warnings")
    for h in list(warnings_log.handlers):
        warnings_log.removeHandler(h)
    warnings_log.addHandler(root.handlers[-1] if log_file is not None else logging.NullHandler())
    warnings_log.propagate = False


def _set_thread_env(config: RunConfig) -> None:
    """Threads for ITK/ANTs and BLAS, set before antspyx is imported."""
    n = str(config.omp_nthreads)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", n)
    os.environ.setdefault("OMP_NUM_THREADS", n)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", n)
    os.environ.setdefault("MKL_NUM_THREADS", n)
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # no telemetry, no network


@contextmanager
def confined_writes(config: RunConfig) -> Iterator[None]:
    """Keep every write of the run (and of its subprocesses) inside the work dir.

    Containers and clusters give a read-only image, a HOME that may be read-only or not
    the user's, and a shared /tmp; bidsdeid writes only to OUTPUT_DIR, the private dir
    and the work dir. Temporary files (registration, subprocesses) go to ``WORK/tmp``
    (``TMPDIR`` and :mod:`tempfile`); matplotlib's config and font cache to
    ``WORK/mplconfig`` unless ``MPLCONFIGDIR`` is set, which also keeps a user's
    matplotlibrc from changing the QC renders. Entered before anything imports
    matplotlib; the previous settings come back on exit (in-process callers, tests).
    """
    # a dry run and an inventory create no work dir: a scratch dir in the private dir,
    # removed on exit, takes its place
    scratch = None
    if config.dry_run or config.inventory_only:
        scratch = config.private_dir / f".scratch-{config.run_id}"
    base = scratch or config.work_dir
    tmp, mpl = base / "tmp", base / "mplconfig"
    try:
        for place in (tmp, mpl):
            place.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotCreateOutput(f"cannot create {exc.filename or tmp}: "
                                 f"{exc.strerror or exc}") from exc
    saved_env = {k: os.environ.get(k) for k in ("TMPDIR", "MPLCONFIGDIR")}
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = str(tmp)
    os.environ.setdefault("MPLCONFIGDIR", str(mpl))
    tempfile.tempdir = str(tmp)
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        code = exc.code if isinstance(exc.code, int) else 1
        return ExitCode.USAGE if code == 2 else code
    setup_logging(args.verbose, None)
    try:
        config = config_from_args(args)
        _set_thread_env(config)
        prepare_places(config)
        with confined_writes(config):
            setup_logging(config.verbosity, config.log_dir / "bidsdeid.log")
            config.save()
            log.info("bidsdeid %s, %s level, run %s", __version__, config.analysis_level,
                     config.run_id)
            return int(_run_level(config))
    except BidsdeidError as exc:
        log.error("%s", exc.message)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001
        log.debug("%s", traceback.format_exc())
        log.error("internal error (%s: %s); the log in the private dir has the details",
                  type(exc).__name__, exc)
        return int(ExitCode.FAILURE)


def entry() -> None:
    """The console command: :func:`main`, then a quick exit.

    Everything a run writes is closed and renamed before :func:`main` returns, so the
    interpreter's teardown (freeing every object of about 1,100 loaded modules: 0.15 to
    0.2 s, a twentieth of a small participant's run) is skipped, as mypy does. With a
    thread still running the normal exit waits for it."""
    code = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: nothing more can be said
        code = code or int(ExitCode.FAILURE)
    if threading.active_count() == 1:
        os._exit(code)
    sys.exit(code)


def _run_level(config: RunConfig) -> ExitCode:
    from bidsdeid.privacy.keys import ProjectKey
    from bidsdeid.progress import Progress

    progress = Progress()
    if config.inventory_only:  # reads headers only: needs no key
        from bidsdeid.site import inventory

        return ExitCode(inventory.run(config, progress))
    key = ProjectKey.load_or_create(config.private_dir)
    if config.analysis_level == "group":
        from bidsdeid import group

        return ExitCode(group.run(config, key, progress))
    from bidsdeid import participant
    from bidsdeid.bids.discover import discover, select

    found = discover(config.bids_dir)
    for bad in found.invalid:
        log.error("%s: not a valid participant folder (labels are letters and digits only)",
                  bad)
    labels = select(found, config.participant_label)
    if config.dry_run:
        from bidsdeid.site import dryrun

        return ExitCode(dryrun.run(config, key, labels, progress))
    results = participant.run(config, key, labels, progress)
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        if r.status == "failed":
            log.error("sub-%s FAILED:", r.input_label)
            for line in r.problems:
                if line.startswith("error"):
                    log.error("  %s", line)
        else:
            log.info("sub-%s %s (%d files, %.1f s)", r.input_label, r.status, r.n_files,
                     r.seconds)
    summary = (f"{len(results) - len(failed)} of {len(results)} participant(s) complete; "
               f"shareable output in {config.output_dir}, private data in {config.private_dir}")
    if failed:
        log.error("%s", summary)
    else:
        print(f"bidsdeid: {summary}")
    # bad input (65) also when every participant completed without the damaged files
    return worst([r.exit_code or (ExitCode.FAILURE if r.status == "failed" else 0)
                  for r in results] + ([ExitCode.DATA] if found.invalid else []))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
