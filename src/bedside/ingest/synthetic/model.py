"""Options and results of the synthetic hospital: drift scenarios and the generation summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

from bedside.errors import InvalidInput


class DriftKind(StrEnum):
    """What changes in the hospital from a drift scenario's start date."""

    LAB_ASSAY_CHANGE = "lab_assay_change"
    POPULATION_SHIFT = "population_shift"
    RESPIRATORY_PANDEMIC = "respiratory_pandemic"


@dataclass(frozen=True, slots=True)
class DriftScenario:
    """A change in the hospital from ``starts`` (00:00 UTC) onwards, for monitoring demos.

    ``magnitude`` means, per kind:

    - ``lab_assay_change``: relative bias of the new lactate assay; every lactate result taken at
      or after ``starts`` reads ``(1 + magnitude)`` times the true value (0.3 = +30 %). Must be
      greater than -1 and not 0.
    - ``population_shift``: strength ``m`` (0 < m <= 3). Patients first admitted at or after
      ``starts`` are older (the age distribution's Beta ``a`` grows by ``2 m``) and carry more
      chronic disease (odds x ``1 + m``); admissions at or after ``starts`` have sepsis odds
      x ``1 + m``.
    - ``respiratory_pandemic``: the fraction (0 < m <= 1) of admissions at or after ``starts``
      with a viral respiratory illness: high respiratory rate, low SpO2, fever and a
      "Viral pneumonia" Condition, independent of the sepsis label.

    Raises:
        InvalidInput: an unknown kind, a ``starts`` that is not a date, or a magnitude outside
            the range of its kind.
    """

    kind: DriftKind
    starts: date
    magnitude: float = 0.3

    def __post_init__(self) -> None:
        try:
            kind = DriftKind(self.kind)
        except ValueError:
            valid = ", ".join(k.value for k in DriftKind)
            raise InvalidInput(
                f"Unknown drift kind {self.kind!r}; expected one of: {valid}."
            ) from None
        object.__setattr__(self, "kind", kind)
        if isinstance(self.starts, datetime) or not isinstance(self.starts, date):
            raise InvalidInput(
                f"Drift 'starts' must be a date (YYYY-MM-DD), got {type(self.starts).__name__}."
            )
        m = self.magnitude
        if isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m):
            raise InvalidInput(f"Drift magnitude must be a finite number, got {m!r}.")
        object.__setattr__(self, "magnitude", float(m))
        limits = {
            DriftKind.LAB_ASSAY_CHANGE: (-1.0, math.inf, "a relative bias > -1 and != 0"),
            DriftKind.POPULATION_SHIFT: (0.0, 3.0, "a strength in (0, 3]"),
            DriftKind.RESPIRATORY_PANDEMIC: (0.0, 1.0, "a fraction in (0, 1]"),
        }
        low, high, what = limits[kind]
        if not (low < m <= high) or m == 0:
            raise InvalidInput(
                f"Drift magnitude {m!r} is out of range for {kind.value}; expected {what}."
            )


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """What :func:`generate_hospital` wrote.

    Attributes:
        out_dir: the export folder.
        manifest: path of ``manifest.json``.
        admissions: encounters written (inpatient + emergency).
        patients: Patient resources written.
        sepsis_admissions: admissions with a sepsis onset (a Sepsis Condition).
        counts: resources written per resource type (equal to the manifest ``count``s).
        bytes_written: total size of the NDJSON files and the manifest.
        seconds: wall-clock generation time.
    """

    out_dir: Path
    manifest: Path
    seed: int
    start: date
    end: date
    drift: DriftScenario | None
    admissions: int
    patients: int
    sepsis_admissions: int
    counts: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def resources(self) -> int:
        """Return the total number of resources written."""
        return sum(self.counts.values())

    @property
    def sepsis_prevalence(self) -> float:
        """Return the fraction of admissions with a sepsis onset."""
        return self.sepsis_admissions / self.admissions if self.admissions else 0.0
