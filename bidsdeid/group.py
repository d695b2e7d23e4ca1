"""The group level: dataset files, whole-dataset leak scan, BIDS validation of OUTPUT_DIR.

1. dataset_description.json, README, .bidsignore, participants.tsv/.json from the
   fragments of completed participants (:func:`bidsdeid.bids.dataset.update_shared_files`);
2. a leak scan of all of OUTPUT_DIR with the identifiers of every participant
   (``state_dir/sub-*/identifiers.json``): one participant's name in another's files
   is found too. Hits (with values) go to ``PRIVATE_DIR/audit/group_leakscan.json``;
3. ``bids-validator-deno`` on OUTPUT_DIR (unless ``--skip-bids-validation``): the result
   goes to ``PRIVATE_DIR/reports/bids_validator.json``, warnings are listed in
   ``reports/group_summary.json``;
4. the group QC report (:func:`bidsdeid.qc.group.write_group_report`):
   ``PRIVATE_DIR/reports/group.html`` and ``group_qc.tsv``, failures first, with the
   validator's warnings and the reviewers' verdicts. Written whatever the outcome.

``--participant-label`` at this level names the participants that must be done (the
SLURM submit script passes its whole list): one with no result at all (its task never
ran, was killed, or ran out of time) is reported as "not run" and fails the run.

Exit code: 1 if the leak scan hits (the most serious), 16 on validator errors, 1 if a
participant failed or did not run (each is named), 0 otherwise.
"""

from __future__ import annotations

import json
import logging

from bidsdeid.bids import dataset, validator
from bidsdeid.config import RunConfig
from bidsdeid.errors import BidsdeidError, ExitCode, MissingInputError
from bidsdeid.privacy.identifiers import Identifiers
from bidsdeid.privacy.keys import ProjectKey
from bidsdeid.privacy.leakscan import Hit, scan_tree, skipped_kinds, write_audit
from bidsdeid.progress import Progress
from bidsdeid.qc.group import write_group_report
from bidsdeid.utils.atomic import write_json

log = logging.getLogger("bidsdeid")


def _all_identifiers(config: RunConfig) -> Identifiers:
    merged = Identifiers()
    for path in sorted(config.state_dir.glob("sub-*/identifiers.json")):
        try:
            merged.merge(Identifiers.load(path))
        except (OSError, ValueError, json.JSONDecodeError):
            log.error("%s is unreadable: the leak scan cannot use it", path.parent.name)
            raise
    return merged


def _participants(config: RunConfig) -> tuple[list[str], list[str]]:
    complete, failed = [], []
    for state in sorted(config.state_dir.glob("sub-*")):
        if (state / "complete.json").is_file():
            complete.append(state.name)
        elif (state / "failed.json").is_file():
            failed.append(state.name)
    return complete, failed


def _leak_scan(config: RunConfig, progress: Progress) -> list[Hit]:
    progress.stage("whole-dataset leak scan")
    hits = scan_tree(config.output_dir, _all_identifiers(config),
                     skip_kinds=skipped_kinds(config))
    n_files = sum(1 for p in config.output_dir.rglob("*") if p.is_file())
    write_audit(config.audit_dir / "group_leakscan.json", hits, n_files)
    for h in hits:
        log.error("%s: %s", h.rel_path, h.public_line())
    return hits


def run(config: RunConfig, key: ProjectKey, progress: Progress) -> int:
    if not config.output_dir.is_dir() or not any(config.output_dir.glob("sub-*")):
        raise MissingInputError(f"{config.output_dir} holds no participant: run the "
                                "participant level first")
    progress.stage("dataset files")
    dataset.update_shared_files(config)
    hits = _leak_scan(config, progress)
    complete, failed = _participants(config)
    expected = [f"sub-{label}" for label in config.participant_label or []]
    missing = [s for s in dict.fromkeys(expected) if s not in complete and s not in failed]
    summary: dict[str, object] = {"participants_complete": complete,
                                  "participants_failed": failed, "leak_hits": len(hits)}
    if expected:
        summary["participants_missing"] = missing
    code = ExitCode.SUCCESS
    if not config.skip_bids_validation:
        progress.stage("BIDS validation")
        try:
            report = validator.validate(config.output_dir, config.work_dir)
        except BidsdeidError as exc:
            log.error("%s", exc.message)
            summary["validator"] = {"error": exc.message}
            code = ExitCode.FAILURE
        else:
            write_json(config.reports_dir / "bids_validator.json", report.to_json(), perms=0o600)
            summary["validator"] = {"errors": [i.line() for i in report.errors],
                                    "warnings": [i.line() for i in report.warnings]}
            for issue in report.errors:
                log.error("bids-validator: %s", issue.line())
            log.info("bids-validator: %d error(s), %d warning(s)", len(report.errors),
                     len(report.warnings))
            if report.errors:
                code = ExitCode.INVALID_BIDS
    for label in failed:
        log.error("%s failed at the participant level (its files are not in the output)",
                  label)
    for label in missing:
        log.error("%s has no result from the participant level (not run, killed, or out "
                  "of time): rerun it", label)
    if (failed or missing) and code == ExitCode.SUCCESS:
        code = ExitCode.FAILURE
    if hits:
        code = ExitCode.FAILURE
        log.error("the whole-dataset leak scan found %d identifier(s): do not share %s; "
                  "details in the private audit dir", len(hits), config.output_dir)
    write_json(config.reports_dir / "group_summary.json", summary, perms=0o600)
    page = write_group_report(config, missing=missing)
    log.info("group QC report: %s", page)
    if code == ExitCode.SUCCESS:
        print(f"bidsdeid: group level done: {len(complete)} participant(s), no leak found, "
              f"{'validation skipped' if config.skip_bids_validation else 'valid BIDS'}")
    return int(code)
