"""The data quality report as HTML and JSON: verdicts, self-contained, aggregates only."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from bedside.domain.quality import QualityConfig, QualityReport, assess_quality
from bedside.reports.quality import quality_json, render_quality_html, write_quality_report
from tests.domain.test_quality import CANARY_ID, CONFIG, ODD_VALUE, features

WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


class _Balance(HTMLParser):
    """Check that every non-void element is closed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def _well_formed(html: str) -> None:
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.problems == [] and parser.stack == [], (parser.problems, parser.stack)


def _report(frame: pd.DataFrame, config: QualityConfig = CONFIG) -> QualityReport:
    return assess_quality(frame, config)


def test_passing_report_renders_every_section_self_contained() -> None:
    report = _report(features())
    html = render_quality_html(
        report, title="Sepsis <pipeline>", dataset="sha256:abc123", generated_at=WHEN
    )
    _well_formed(html)
    assert "Passed" in html and "Failed" not in html
    assert "Sepsis &lt;pipeline&gt;" in html and "<pipeline>" not in html
    assert "sha256:abc123" in html and "2026-03-01T09:30:00+00:00" in html
    for heading in (
        "Completeness",
        "Physiologic plausibility",
        "Outcome (label)",
        "Duplicates",
        "Columns and types",
        "Column profile",
    ):
        assert f"<h2>{heading}</h2>" in html
    for column in ("heart_rate_max_6h", "lactate_max_24h", "encounter_id"):
        assert f"<code>{column}</code>" in html
    assert "20–300 /min" in html and "25–45 Cel" in html
    # Self-contained: nothing is fetched from anywhere, nothing runs.
    lowered = html.lower()
    for marker in ("http://", "https://", "<script", " src=", "@import", "url(", "<link"):
        assert marker not in lowered, marker


def test_verdict_banner_says_blocking_not_blocking_or_warnings() -> None:
    frame = features()
    frame.loc[:99, "heart_rate_max_6h"] = np.nan
    blocking = render_quality_html(_report(frame))
    assert "Failed — this blocks the pipeline" in blocking
    assert "What needs attention" in blocking and "80.0% complete, below the required 95%" in (
        blocking
    )
    relaxed = render_quality_html(_report(frame, QualityConfig(blocker=False)))
    assert "Failed — not blocking" in relaxed
    warned = features()
    warned.loc[3, "heart_rate_max_6h"] = 400.0
    html = render_quality_html(_report(warned, replace(CONFIG, max_implausible_share=0.01)))
    assert "Passed, with 1 warning(s)" in html
    _well_formed(html)


def test_report_files_hold_no_patient_values(tmp_path: Path) -> None:
    frame = features()
    frame.loc[7, "patient_id"] = CANARY_ID
    frame.loc[8, "heart_rate_max_6h"] = ODD_VALUE
    frame.loc[9, "sex"] = "ZZCANARY-RARE-CATEGORY"
    report = _report(frame)
    html_path, json_path = write_quality_report(
        report, tmp_path / "reports", dataset="demo", generated_at=WHEN
    )
    for path in (html_path, json_path):
        data = path.read_bytes()
        for secret in (CANARY_ID.encode(), b"287.12", b"ZZCANARY"):
            assert secret not in data, (path.name, secret)
    loaded = json.loads(json_path.read_text(encoding="utf-8"))
    assert loaded == {**report.to_dict(), "dataset": "demo", "generated_at": WHEN.isoformat()}
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "data-quality.html",
        "data-quality.json",
    ]


def test_report_renders_a_table_without_label_or_ranges() -> None:
    report = _report(pd.DataFrame({"note_length": [1, 2, 3]}), QualityConfig())
    html = render_quality_html(report)
    _well_formed(html)
    assert "No label column was checked." in html
    assert "No column has a known physiologic range." in html
    assert json.loads(quality_json(report))["rows"] == 3
