"""Stage 10: move a participant's staged, leak-scanned files into OUTPUT_DIR.

Every file is copied under a temporary name and renamed (so a crash never leaves a
half-written file under a real name); files of an earlier publication of the same
participant that the new one does not have are removed; then a completion marker
with the sha256 of every published file is written to the private state dir. Only a
participant with a marker is complete: a rerun skips it (unless ``--force`` or the
settings changed) and redoes anything else from scratch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from bidsdeid import __version__
from bidsdeid.config import RunConfig
from bidsdeid.context import ParticipantContext
from bidsdeid.errors import CannotCreateOutput
from bidsdeid.utils.atomic import TMP_PREFIX, copy_file, remove_stray_temporaries, write_json
from bidsdeid.utils.paths import file_sha256

log = logging.getLogger("bidsdeid")

MARKER = "complete.json"
FAILED = "failed.json"


def state_dir(config: RunConfig, label: str) -> Path:
    return config.state_dir / f"sub-{label}"


def _file_digest(path: Path | None) -> str | None:
    return file_sha256(path) if path is not None and Path(path).is_file() else None


def settings_fingerprint(config: RunConfig, key_fingerprint: str) -> str:
    """A hash of every setting that changes the output: a change means redo."""
    relevant: dict[str, Any] = {
        "version": __version__,
        "key": key_fingerprint,
        "deid": config.to_dict()["deid"],
        "deface": config.to_dict()["deface"],
        "dicom_out": config.dicom_out,
        "relabel": config.relabel,
        "include_sex": config.include_sex,
        "drop_demographics": config.drop_demographics,
        "session_label": config.session_label,
        "bids_filters": config.bids_filters,
        "id_map": _file_digest(config.id_map),
        "mapping_file": _file_digest(config.mapping_file),
        "rules_file": _file_digest(config.rules_file),
    }
    blob = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_marker(config: RunConfig, label: str) -> dict[str, Any] | None:
    path = state_dir(config, label) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(config: RunConfig, label: str, key_fingerprint: str | None = None) -> bool:
    """True if ``sub-<label>`` was published with the current settings and every
    published file is still there, unchanged in size."""
    marker = _read_marker(config, label)
    if marker is None:
        return False
    if key_fingerprint is not None and marker.get("settings") != settings_fingerprint(
            config, key_fingerprint):
        return False
    if key_fingerprint is None and marker.get("settings_version") != __version__:
        return False
    for rel, info in marker.get("files", {}).items():
        p = config.output_dir / rel
        try:
            if p.stat().st_size != info["size"]:
                return False
        except OSError:
            return False
    return True


def completed_label(config: RunConfig, label: str) -> str | None:
    marker = _read_marker(config, label)
    return marker.get("output_label") if marker else None


def _staged_files(staging: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(staging):
        for name in files:
            if name.startswith(TMP_PREFIX):
                continue
            out.append(str((Path(dirpath) / name).relative_to(staging)))
    return sorted(out)


def _owned_roots(config: RunConfig, output_label: str) -> list[Path]:
    sub = f"sub-{output_label}"
    return [config.output_dir / sub, config.output_dir / "sourcedata" / sub,
            config.derivatives_dir / sub]


def unpublish(config: RunConfig, label: str) -> list[str]:
    """Remove every file an earlier publication of ``sub-<label>`` put in OUTPUT_DIR."""
    marker = _read_marker(config, label)
    removed: list[str] = []
    if marker is None:
        return removed
    for rel in marker.get("files", {}):
        with contextlib.suppress(FileNotFoundError):
            (config.output_dir / rel).unlink()
            removed.append(rel)
    _prune_empty(config, marker.get("output_label") or label)
    with contextlib.suppress(FileNotFoundError):
        (state_dir(config, label) / MARKER).unlink()
    return removed


def _prune_empty(config: RunConfig, output_label: str) -> None:
    for root in _owned_roots(config, output_label):
        if not root.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # only succeeds when empty


_SESSION = re.compile(r"(?:^|[/_])ses-([A-Za-z0-9]+)(?=[/_.])")


def _other_sessions(ctx: ParticipantContext, previous: dict[str, Any],
                    published: dict[str, Any]) -> dict[str, Any]:
    """With ``--session-label``: the files of the earlier publication that belong to
    sessions this run did not select (they are still published and stay so)."""
    if not ctx.config.session_label:
        return {}
    selected = {out for inp, out in ctx.session_map.items() if inp is not None}
    kept = {}
    for rel, entry in previous.get("files", {}).items():
        found = _SESSION.search(rel)
        if (rel not in published and found and found.group(1) not in selected
                and (ctx.config.output_dir / rel).is_file()):
            kept[rel] = entry
    return kept


def _remove_own_strays(config: RunConfig, files: list[str]) -> None:
    """Temporary files a killed publication of these files left in folders shared with
    other participants (``derivatives/bidsdeid/sub-<p>.html``). Only names of this
    participant's files are touched: a parallel task may be writing its own there."""
    by_folder: dict[Path, set[str]] = {}
    for rel in files:
        dst = config.output_dir / rel
        by_folder.setdefault(dst.parent, set()).add("-" + dst.name[:40])
    for folder, endings in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(TMP_PREFIX) and any(entry.name.endswith(e)
                                                         for e in endings):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def run(ctx: ParticipantContext) -> None:
    """Publish ``ctx.staging`` into OUTPUT_DIR and mark the participant complete."""
    config = ctx.config
    if ctx.failed:
        return
    files = _staged_files(ctx.staging)
    previous = _read_marker(config, ctx.input_label)
    published: dict[str, dict[str, Any]] = {}
    try:
        config.output_dir.mkdir(parents=True, exist_ok=True)
        for root in _owned_roots(config, ctx.output_label):
            remove_stray_temporaries(root)
        _remove_own_strays(config, files)
        for i, rel in enumerate(files, 1):
            src = ctx.staging / rel
            dst = config.output_dir / rel
            copy_file(src, dst)
            published[rel] = {"size": dst.stat().st_size, "sha256": file_sha256(dst)}
            ctx.progress.item("published", i, len(files))
    except OSError as exc:
        # a disk that fills up half way must not leave half a participant in OUTPUT_DIR
        for rel in published:
            with contextlib.suppress(OSError):
                (config.output_dir / rel).unlink()
        _prune_empty(config, ctx.output_label)
        raise CannotCreateOutput(f"cannot write to {config.output_dir}: "
                                 f"{exc.strerror or exc}") from exc
    if previous:  # files of an earlier publication that this one no longer has
        for rel, entry in _other_sessions(ctx, previous, published).items():
            published[rel] = entry  # --session-label: the sessions not run stay
        for rel in set(previous.get("files", {})) - set(published):
            with contextlib.suppress(FileNotFoundError):
                (config.output_dir / rel).unlink()
        _prune_empty(config, previous.get("output_label") or ctx.output_label)
    write_json(state_dir(config, ctx.input_label) / MARKER, {
        "output_label": ctx.output_label,
        "settings": settings_fingerprint(config, ctx.key.fingerprint),
        "settings_version": __version__,
        "files": published,
    }, perms=0o600)
    with contextlib.suppress(FileNotFoundError):
        (state_dir(config, ctx.input_label) / FAILED).unlink()
    from bidsdeid.bids import dataset

    dataset.update_shared_files(config)  # after the marker: this participant now counts
    ctx.results["published"] = sorted(published)
    log.info("[sub-%s] published %d files", ctx.input_label, len(published))


def record_failure(ctx: ParticipantContext) -> None:
    """Mark a participant failed; withdraw any earlier publication (fail closed)."""
    config = ctx.config
    removed = unpublish(config, ctx.input_label)
    if removed:
        log.warning("[sub-%s] withdrew %d files of an earlier run from the output",
                    ctx.input_label, len(removed))
        from bidsdeid.bids import dataset

        dataset.update_shared_files(config)  # participants.tsv without the withdrawn one
    write_json(state_dir(config, ctx.input_label) / FAILED, {
        "output_label": ctx.output_label,
        "problems": [p.line() for p in ctx.problems],
    }, perms=0o600)
