"""Values a site rule publishes on purpose leave the participant's identifiers.

The leak scan and the DICOM self-check search the output for every identifier read
from the input. A value a site rule keeps on purpose (``PatientWeight: keep``, an
InstitutionName kept, a SeriesDescription on the vocabulary) would be found there and
fail the participant, so its tokens are taken out of the identifiers the moment the
value is read (DICOM headers) or kept (BIDS sidecar fields). Only the tokens that come
from the kept value itself go: a patient's name elsewhere in the same file is still
searched for. A released token stays released: a value published on purpose in one
place is no secret in another (``DWI_dir80_PA`` kept as a SeriesDescription on the
vocabulary is also the ProtocolName of a derived series, which is cleaned), so
:meth:`KeptValues.reapply` takes it out again after every later header. What was taken
out (per rule and kind, counts only) goes to the audit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from bidsdeid.privacy.identifiers import BIRTH_DATE_KEYWORDS, KINDS, Identifiers


class KeptValues:
    """Takes the tokens of kept values out of one participant's identifiers."""

    def __init__(self, identifiers: Identifiers) -> None:
        self.identifiers = identifiers
        self.released: set[tuple[str, str, str]] = set()  # (rule target, kind, token)
        self.occurrences: Counter[str] = Counter()  # rule target -> kept values seen
        self.sticky: set[tuple[str, str]] = set()  # (kind, token) published on purpose

    def element(self, target: str, elem: DataElement) -> None:
        """A DICOM element kept by a rule: its tokens, as the header collector made them."""
        tokens = Identifiers()
        mini = Dataset()
        mini.add(elem)
        tokens.add_dataset(mini)
        self.occurrences[target] += 1
        self._discard(target, tokens)

    def text(self, target: str, value: str, vr: str | None) -> None:
        """A sidecar value kept by a rule: the whole value in every kind, plus name parts
        (person-name VR) and date forms (date VRs), as the sidecar collectors make them."""
        tokens = Identifiers()
        for kind in KINDS:
            tokens.add(kind, value, target)
        if vr == "PN":
            tokens.add_name(value, target)
        elif vr in ("DA", "DT"):
            tokens.add_date(value[:10], target,
                            kind="birthdate" if target in BIRTH_DATE_KEYWORDS else "date")
        self.occurrences[target] += 1
        self._discard(target, tokens)

    def _discard(self, target: str, tokens: Identifiers) -> None:
        for kind, values in tokens.values.items():
            mine = self.identifiers.values.get(kind, {})
            for text in values:
                self.sticky.add((kind, text))
                if mine.pop(text, None) is not None:
                    self.released.add((target, kind, text))

    def reapply(self) -> None:
        """Take every token released so far out again (a later header re-added it)."""
        values = self.identifiers.values
        for kind, text in self.sticky:
            values.get(kind, {}).pop(text, None)

    def summary(self) -> dict[str, Any]:
        """For the audit (counts, no values): per rule target, the kept values seen and
        the distinct identifier tokens released, by kind."""
        out: dict[str, Any] = {}
        for target, n in sorted(self.occurrences.items()):
            kinds = Counter(kind for t, kind, _text in self.released if t == target)
            out[target] = {"occurrences_kept": n, "tokens_released": dict(sorted(kinds.items()))}
        return out
