"""The drift report: self-contained HTML with embedded figures, JSON equal to the result."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bedside.domain.drift import DriftOverride, DriftResult, build_profile, compute_drift
from bedside.reports.drift import drift_json, psi_band, render_drift_html, write_drift_report

SENTINEL = 424242.125  # a current value that must never reach a report
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _result(shift: float, seed: int = 0) -> DriftResult:
    rng = np.random.default_rng(seed)
    n_ref, n_cur = 3000, 4000

    def table(n: int, s: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "lactate": np.round(rng.lognormal(0.4 + s, 0.5, n), 1),
                "heart_rate": np.round(rng.normal(88 + 10 * s, 15, n)),
                "unit": np.array(["ICU", "ward", "ED"], dtype=object)[rng.integers(0, 3, n)],
                "sex": np.array(["F", "M"], dtype=object)[rng.integers(0, 2, n)],
                "risk_score": rng.beta(2, 8 - 4 * s, n),
            }
        )

    reference = table(n_ref, 0.0)
    current = table(n_cur, shift)
    current.loc[7, "lactate"] = SENTINEL
    current.loc[8, "unit"] = "Bed 12 Smith"  # a new category, never named in a report
    profile = build_profile(reference, prediction_column="risk_score")
    return compute_drift(profile, current)


@pytest.fixture(scope="module")
def drifted() -> DriftResult:
    return _result(0.5)


@pytest.fixture(scope="module")
def written(drifted: DriftResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The drifted window's report, written once (figures take a second or two to draw)."""
    return write_drift_report(
        drifted,
        tmp_path_factory.mktemp("drift") / "reports",
        model="sepsis@3",
        window="2026-03-01",
        generated_at=NOW,
        retraining_trigger="drift_score > 0.3",
        trigger_fired=True,
    )


@pytest.fixture(scope="module")
def html(written: tuple[Path, Path]) -> str:
    return written[0].read_text(encoding="utf-8")


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_html_is_self_contained_with_embedded_figures(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    images = _images(html)
    assert len(images) == 4  # scores, PSI, prediction distribution, feature distributions
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 2000 for img in images)
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing may be fetched"
    assert "<script" not in html
    assert "sepsis@3" in html and "2026-03-02T06:00:00+00:00" in html


def test_html_states_the_verdicts(drifted: DriftResult, html: str) -> None:
    assert drifted.dataset_drift
    assert "Dataset drift detected" in html
    assert f"{drifted.n_drifted} of {len(drifted.columns)} features drifted" in html
    assert "<code>drift_score &gt; 0.3</code>: <b>fired</b>" in html
    for column in drifted.columns:
        assert f"<td>{column.name}</td>" in html
        assert column.method_label in html
    assert drifted.prediction is not None and drifted.prediction.drifted
    assert "Prediction drift" in html


def test_stable_window_says_no_drift() -> None:
    stable = _result(0.0, seed=3)
    assert not stable.dataset_drift
    html = render_drift_html(stable)
    assert "No dataset drift" in html and "Dataset drift detected" not in html


def test_report_holds_no_value_from_the_window(written: tuple[Path, Path], html: str) -> None:
    text = written[1].read_text(encoding="utf-8")
    for leak in ("424242", "Bed 12", "Smith"):
        assert leak not in html and leak not in text


def test_json_is_the_result_plus_context(drifted: DriftResult, written: tuple[Path, Path]) -> None:
    html_path, json_path = written
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["model"] == "sepsis@3" and data["window"] == "2026-03-01"
    assert data["generated_at"] == NOW.isoformat()
    assert data["retraining_trigger"] == {"expression": "drift_score > 0.3", "fired": True}
    for key, value in drifted.to_dict().items():
        assert data[key] == value, key
    assert json.loads(drift_json(drifted)) == drifted.to_dict()
    assert sorted(p.name for p in html_path.parent.iterdir()) == ["drift.html", "drift.json"]


def test_p_value_and_distance_tests_get_their_own_panels() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    current = pd.DataFrame({"a": rng.normal(0.5, 1, 3000), "b": rng.normal(size=3000)})
    mixed = compute_drift(
        build_profile(reference), current, per_column_overrides={"a": DriftOverride(method="ks")}
    )
    html = render_drift_html(mixed)
    assert "K-S p_value" in html and "Wasserstein distance (normed)" in html
    assert "Prediction drift" not in html
    assert len(_images(html)) == 3


@pytest.mark.parametrize(
    ("psi", "band"),
    [(0.05, "no significant shift"), (0.1, "moderate shift"), (0.3, "significant shift")],
)
def test_psi_bands(psi: float, band: str) -> None:
    assert psi_band(psi) == band
