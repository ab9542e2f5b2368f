"""What the dashboard's version page shows from evidence: suppressed counts, labelled thresholds."""

from __future__ import annotations

from bedside.dashboard.views import fairness_table
from bedside.service import Platform
from tests.support import Team

FAIRNESS = {
    "threshold": 0.087,
    "confidence_level": 0.95,
    "groups": [
        {"attribute": "race", "group": "A", "n_patients": 420, "n_events": 31, "status": "ok"},
        {
            "attribute": "race",
            "group": "B",
            "n_patients": 7,
            "n_events": 0,
            "status": "insufficient_evidence",
        },
        {
            "attribute": "race",
            "group": "C",
            "n_patients": 12,
            "n_events": 3,
            "status": "insufficient_evidence",
        },
    ],
}


def test_group_counts_from_one_to_ten_are_suppressed(platform: Platform, team: Team) -> None:
    version = platform.register_version(
        team.scientist, "sepsis-prediction", evidence={"fairness": FAIRNESS, "threshold": 0.087}
    )
    table = fairness_table(version)
    assert table is not None
    counts = {row.cells[1]: (row.cells[2], row.cells[3]) for row in table.rows}
    assert counts == {
        "A": ("420", "31"),
        "B": ("fewer than 11", "0"),
        "C": ("12", "fewer than 11"),
    }
    assert table.note == "95% intervals: bootstrap"  # assessed at the operating threshold


def test_a_threshold_chosen_at_review_is_named_beside_the_training_assessment(
    platform: Platform, team: Team
) -> None:
    version = platform.register_version(
        team.scientist, "sepsis-prediction", evidence={"fairness": FAIRNESS, "threshold": 0.3}
    )
    table = fairness_table(version)
    assert table is not None and table.threshold == "0.087"
    assert "before the operating threshold 0.300 was chosen at review" in table.note
