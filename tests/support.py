"""Test support shared by several test modules (constants, a settable clock, the team)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bedside.domain.models import User

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FOUNDING_PIPELINE = EXAMPLES / "sepsis" / "pipeline.yaml"
PASSWORD = "correct horse battery staple"
# Synthetic Synthea FHIR sample (Apache-2.0), vendored so a fresh clone tests with it.
SYNTHEA = REPO / "tests" / "data" / "synthea-10-patients"


class Clock:
    """A settable server clock (time is an argument of the platform, never a global)."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(microseconds=1)
        return self.moment

    def advance(self, **kwargs: float) -> None:
        self.moment += timedelta(**kwargs)


@dataclass
class Team:
    """The people of a small hospital ML team, each with their role."""

    admin: User
    scientist: User  # trains models
    engineer: User  # deploys them
    cmio: User
    informaticist: User
    auditor: User
    second_cmio: User
