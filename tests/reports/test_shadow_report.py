"""The shadow report: self-contained HTML with figures, JSON equal to the data, its digest."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bedside.domain.shadow import ShadowCriteria, compare_shadow
from bedside.reports.shadow import render_shadow_html, write_shadow_report

DAY = 86400.0
SENTINEL = 0.987654321  # one request's shadow score: it must never reach a report


def _data(*, shadow_alone: bool = False, labelled: bool = True, errors: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    n = 240
    y = rng.integers(0, 2, n).astype(float)
    production = np.clip(0.2 + 0.4 * y + rng.normal(0, 0.15, n), 0, 0.95)
    shadow = np.clip(0.2 + 0.45 * y + rng.normal(0, 0.15, n), 0, 0.95)
    shadow[17] = SENTINEL
    if not labelled:
        y[:] = math.nan
    if shadow_alone:
        production[:] = math.nan
    result = compare_shadow(
        shadow_probability=shadow,
        production_probability=production,
        production_decision=np.where(np.isnan(production), math.nan, production >= 0.5),
        labels=y,
        received=np.linspace(0, 3 * DAY - 1, n),
        shadow_threshold=0.5,
        production_threshold=None if shadow_alone else 0.5,
        period_start=0.0,
        period_end=3 * DAY,
        errors=errors,
        skipped=2,
        error_kinds={"ValueError": errors},
        criteria=ShadowCriteria(),
        n_boot=100,
    )
    return {
        "report": "shadow",
        "model": "sepsis-prediction",
        "version": "sepsis-prediction@2",
        "production_versions": {} if shadow_alone else {"sepsis-prediction@1": n},
        "period": {"start": "2026-03-01T09:00:00+00:00", "end": "2026-03-04T09:00:00+00:00"},
        "generated_at": "2026-03-04T09:00:00+00:00",
        **result.to_dict(),
    }


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, dict[str, Any]]:
    data = _data()
    html, json_path, digest = write_shadow_report(data, tmp_path_factory.mktemp("shadow"))
    return html, json_path, digest, data


def test_shadow_report_html_is_self_contained_with_figures(
    written: tuple[Path, Path, str, dict[str, Any]],
) -> None:
    html = written[0].read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    images = _images(html)
    assert len(images) == 4  # distributions, joint scores, alerts per day, performance
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 2000 for img in images)
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing may be fetched"
    assert "<script" not in html
    assert "sepsis-prediction@2" in html and "sepsis-prediction@1" in html
    for shown in ("Passed", "Cohen", "Alerts per", "DeLong", "min_scored", "ValueError"):
        assert shown in html, shown


def test_shadow_report_json_is_the_data_and_the_digest_is_of_its_bytes(
    written: tuple[Path, Path, str, dict[str, Any]],
) -> None:
    html_path, json_path, digest, data = written
    raw = json_path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == digest
    assert json.loads(raw) == json.loads(json.dumps(data))
    assert digest in html_path.read_text(encoding="utf-8")


def test_shadow_report_holds_no_request_level_score(
    written: tuple[Path, Path, str, dict[str, Any]],
) -> None:
    for path in written[:2]:
        text = path.read_text(encoding="utf-8")
        assert "0.9876" not in text and str(SENTINEL) not in text


def test_shadow_alone_report_says_agreement_is_not_applicable_and_names_failures() -> None:
    data = _data(shadow_alone=True, errors=5)  # 5 errors in 245 attempts: over 1 %
    assert data["verdict"]["passed"] is False
    html = render_shadow_html(data)
    assert "not applicable" in html and "no production version (shadow alone)" in html
    assert len(_images(html)) == 3  # no joint-score figure without production
    assert "Failed" in html and "max_error_rate did not hold" in html
    assert "not evaluated" in html


def test_report_without_outcomes_says_performance_is_not_yet_available() -> None:
    data = _data(labelled=False)
    html = render_shadow_html(data)
    assert "Not yet available" in html and "no outcome has arrived" in html
    assert len(_images(html)) == 3  # no performance figure
    assert data["verdict"]["not_evaluated"] == ["auroc_non_inferior"]


def test_a_report_of_an_empty_period_renders() -> None:
    result = compare_shadow(
        shadow_probability=[],
        production_probability=[],
        production_decision=[],
        labels=[],
        received=[],
        shadow_threshold=0.5,
        production_threshold=None,
        period_start=0.0,
        period_end=DAY,
    )
    data = {**_data(), **result.to_dict()}
    html = render_shadow_html(data)
    assert "the shadow has scored no request yet" in html and "min_scored did not hold" in html
