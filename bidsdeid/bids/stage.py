"""Stage 1: load a participant's inputs and collect its identifiers.

Indexes the raw DICOM (headers only) and finds the BIDS NIfTI inputs
(:func:`bidsdeid.bids.inputs.load`). Every
header read goes through :meth:`Identifiers.add_dataset`, so the leak scan knows
every name, ID, date, UID, institution and device of the participant, whatever
file it came from. Identifiers are saved in the private state dir (the group level
rescans the whole dataset with them). The same read also collects the per-file facts
the series heuristic needs (:class:`bidsdeid.convert.facts.FactsCollector`), so no
header is read twice. With ``--nprocs`` > 1, worker processes read the headers, each
into its own collector, folded back in file order (the same result as one read); a
site rules file's header hooks keep the read in this process. The participant's
rows of the input tables (:mod:`bidsdeid.bids.tsv`) and the BIDS inputs' sidecars and
header text are collected here too.
"""

from __future__ import annotations

from collections.abc import Callable

from pydicom.dataset import Dataset

from bidsdeid.bids import inputs, tsv
from bidsdeid.context import ParticipantContext
from bidsdeid.convert.facts import FactsCollector
from bidsdeid.dicom.index import HeaderCollector, index_participant
from bidsdeid.errors import DataError, ExitCode
from bidsdeid.privacy.identifiers import Identifiers

HEADER_HOOKS = "header_hooks"
"""``ctx.results`` key: functions called with every header read, after the identifiers
and facts collectors (the site rules take the values a rule keeps out of the
identifiers there: :mod:`bidsdeid.site.stage`)."""


def load_inputs(ctx: ParticipantContext) -> None:
    """Index and collect (:func:`read_inputs`), then save the identifiers."""
    read_inputs(ctx)
    # the participant label becomes an identifier only when it is replaced
    # (bids.labels.assign), else every output path would be a "leak"
    ctx.identifiers.save(ctx.config.state_dir / f"sub-{ctx.input_label}" / "identifiers.json")


class InputCollector:
    """What every header read gives: the participant's identifiers, the per-file facts
    the series heuristic needs, and the header hooks. Split across worker processes
    when there are no hooks (a hook's state lives in this process)."""

    def __init__(self, identifiers: Identifiers, hooks: list[Callable[[Dataset], None]]
                 ) -> None:
        self.identifiers = identifiers
        self.facts = FactsCollector()
        self.hooks = hooks

    def header(self, ds: Dataset) -> None:
        self.identifiers.add_dataset_fast(ds)  # = add_dataset, without pixel-side data
        self.facts(ds)  # what the series heuristic needs, taken in the same read
        for hook in self.hooks:
            hook(ds)

    def frames(self, top: Dataset) -> Callable[[Dataset], None]:
        """A large enhanced file's per-frame items, one at a time: identifiers and facts
        taken from each, then the item is let go (:mod:`bidsdeid.dicom.index`)."""
        add_facts = self.facts.frames(top)

        def on_frame(item: Dataset) -> None:
            self.identifiers.add_dataset_fast(item)
            add_facts(item)

        return on_frame

    def fresh(self) -> InputCollector | None:
        return None if self.hooks else InputCollector(Identifiers(), [])

    def merge(self, other: HeaderCollector) -> None:
        assert isinstance(other, InputCollector)
        self.identifiers.merge(other.identifiers)
        self.facts.merge(other.facts)


def read_inputs(ctx: ParticipantContext) -> None:
    """Everything :func:`load_inputs` does, writing nothing (the dry run uses it)."""
    cfg = ctx.config
    collector = InputCollector(ctx.identifiers, list(ctx.results.get(HEADER_HOOKS, ())))
    ctx.dicom = index_participant(cfg.bids_dir, ctx.input_label, collector=collector,
                                  nprocs=cfg.nprocs, sessions=cfg.session_label)
    ctx.results["dicom_facts"] = collector.facts.by_path
    for skipped in ctx.dicom.skipped:
        rel = skipped.path.relative_to(cfg.bids_dir) if skipped.path.is_relative_to(
            cfg.bids_dir) else skipped.path
        ctx.warn("load inputs", str(rel), f"skipped: {skipped.reason}",
                 None if skipped.harmless else ExitCode.DATA)
    bids_root = cfg.bids_dir / f"sub-{ctx.input_label}"
    ctx.bids_root = bids_root if bids_root.is_dir() else None
    if not ctx.dicom.series and ctx.bids_root is None:
        raise DataError(f"sub-{ctx.input_label}: nothing to convert (no readable DICOM under "
                        f"sourcedata/sub-{ctx.input_label} and no sub-{ctx.input_label}/ "
                        "BIDS folder)")
    # the input's own tables (birth dates, visit dates, hospital numbers in extra
    # columns) and the BIDS images' sidecars and headers
    tsv.collect_identifiers(ctx.identifiers, cfg.bids_dir, ctx.input_label)
    inputs.load(ctx)
