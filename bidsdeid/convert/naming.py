"""From decisions and dcm2niix outputs to BIDS names.

:func:`roles` gives each image dcm2niix made from one series its suffix and entities:
gradient-echo field maps become magnitude1/magnitude2 + phasediff, or
magnitude1/magnitude2 + phase1/phase2, or fieldmap + magnitude; several echoes get
``echo-<n>`` and magnitude/phase images ``part-mag``/``part-phase`` where the schema
allows them. Anything else is "unclear" and the series is left out, never guessed.

:func:`number_repeats` then makes names unique within a session: series that would
share a name get ``acq-2D``/``acq-3D`` or an orientation ``acq-`` label when their
acquisitions differ that way, and ``run-<n>`` in series-number order otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bidsdeid.bids import schema
from bidsdeid.convert.dcm2niix import Output
from bidsdeid.convert.facts import SeriesFacts
from bidsdeid.convert.heuristic import GRE_FIELDMAP, Decision

_PART_LABEL = {"mag": "mag", "phase": "phase", "real": "real", "imag": "imag"}


@dataclass
class Named:
    """One image to publish: its dcm2niix output and its BIDS name parts."""

    output: Output
    datatype: str
    suffix: str
    entities: dict[str, str]  # without sub/ses
    series_number: int | None
    session: str | None  # input session label
    facts: SeriesFacts
    decision: Decision
    extra: dict[str, Any] = field(default_factory=dict)  # sidecar additions
    origin: Any = None  # the caller's record of the series (a convert.plan.Plan)

    def key(self) -> tuple[str | None, str, str, tuple[tuple[str, str], ...]]:
        return (self.session, self.datatype, self.suffix, tuple(sorted(self.entities.items())))


def _echo(o: Output) -> int:
    return o.echo if o.echo is not None else 1


def _gre_fieldmap(outputs: list[Output]) -> list[tuple[Output, str]] | str:
    if any(o.part in ("real", "imag") for o in outputs):
        return "real/imaginary field map images are not a BIDS field map"
    hz = [o for o in outputs if o.fieldmap_hz]
    mags = sorted((o for o in outputs if o.part == "mag" and not o.fieldmap_hz), key=_echo)
    phases = sorted((o for o in outputs if o.part == "phase" and not o.fieldmap_hz), key=_echo)
    if hz:
        if len(hz) == 1 and len(mags) <= 1 and not phases:
            return [(hz[0], "fieldmap")] + [(m, "magnitude") for m in mags]
        return "field map in Hz mixed with other images"
    if len(mags) > 2 or len(phases) > 2:
        return f"{len(mags)} magnitude and {len(phases)} phase images (expected at most 2 each)"
    if len({_echo(o) for o in mags}) != len(mags) or len({_echo(o) for o in phases}) != len(phases):
        return "two images with the same echo number"
    named = [(m, f"magnitude{i}") for i, m in enumerate(mags, 1)]
    if len(phases) == 1:
        named.append((phases[0], "phasediff"))
    elif len(phases) == 2:
        named += [(p, f"phase{i}") for i, p in enumerate(phases, 1)]
    return named


def roles(decision: Decision, outputs: list[Output]) -> list[tuple[Output, str, dict[str, str]]] \
        | str:
    """(output, suffix, extra entities) for every output, or why they are unclear."""
    if not outputs:
        return "no image"
    if not all(o.understood for o in outputs):
        odd = sorted({o.postfix for o in outputs if not o.understood})
        return f"dcm2niix split the series into images of unclear role ({len(odd)} kinds)"
    assert decision.datatype is not None and decision.suffix is not None
    if decision.suffix == GRE_FIELDMAP:
        named = _gre_fieldmap(outputs)
        if isinstance(named, str):
            return named
        return [(o, suffix, {}) for o, suffix in named]
    suffix, datatype = decision.suffix, decision.datatype
    allowed = schema.allowed_entities(datatype, suffix) or {}
    echoes = {_echo(o) for o in outputs}
    parts = {o.part for o in outputs}
    result = []
    for o in outputs:
        extra: dict[str, str] = {}
        if len(echoes) > 1:
            if "echo" not in allowed:
                return f"{len(echoes)} echoes, but {suffix} allows no echo entity"
            extra["echo"] = str(_echo(o))
        if len(parts) > 1 or o.part != "mag":
            if "part" not in allowed:
                return f"{o.part} images, but {suffix} allows no part entity"
            extra["part"] = _PART_LABEL[o.part]
        result.append((o, suffix, extra))
    keys = [tuple(sorted(e.items())) for _o, _s, e in result]
    if len(set(keys)) != len(keys):
        return "several images would get the same name"
    return result


def _signature(n: Named, attr: str) -> str:
    if attr == "type":
        return n.facts.mr_acquisition_type or ""
    return n.facts.orientation or ""


def number_repeats(items: list[Named]) -> None:
    """Make names unique per session (``acq-`` for different acquisitions, then ``run-``)."""
    groups: dict[tuple[Any, ...], list[Named]] = defaultdict(list)
    for n in items:
        groups[n.key()].append(n)
    for group in groups.values():
        series = {n.series_number for n in group}
        if len(series) < 2 or any("acq" in n.entities for n in group):
            continue
        for attr in ("type", "orientation"):
            labels = {_signature(n, attr) for n in group}
            if len(labels) > 1 and all(labels):
                allowed = schema.allowed_entities(group[0].datatype, group[0].suffix) or {}
                if "acq" in allowed:
                    for n in group:
                        n.entities["acq"] = _signature(n, attr)
                break
    groups = defaultdict(list)
    for n in items:
        groups[n.key()].append(n)
    for group in groups.values():
        order = sorted({(n.series_number if n.series_number is not None else 1 << 30)
                        for n in group})
        if len(order) < 2:
            continue
        for n in group:
            allowed = schema.allowed_entities(n.datatype, n.suffix) or {}
            if "run" in allowed:
                number = n.series_number if n.series_number is not None else 1 << 30
                n.entities["run"] = str(order.index(number) + 1)


def short_name(datatype: str, suffix: str, entities: dict[str, str]) -> str:
    """A safe name for a series without sub/ses (``T1w``, ``task-rest_bold``)."""
    from bidsdeid.bids.names import build_name

    ents = {k: v for k, v in entities.items() if k not in ("sub", "ses")}
    return build_name(ents, suffix, "")
