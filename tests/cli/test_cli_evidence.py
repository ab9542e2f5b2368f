"""The evidence commands through the real command line: docs, version shadow-report, monitor.

The state behind each command is built cheaply, the way the stage tests build it (no training):
a recorded training run registered, gated and signed (tests/documents/support.py), an inference
log written with the real InferenceLog for a version in shadow (tests/service/test_shadow_stage.py)
and traffic of a live version with its reference profile (tests/service/test_monitor_stage.py).
The project folder then gets the ``bedside.toml`` a user would have, naming the test database, so
every command runs through ``bedside.cli.invoke`` (the console script's own entry) on SQLite
and PostgreSQL alike, reading the password from stdin.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bedside.domain.lifecycle import Action
from bedside.domain.models import ModelVersion
from bedside.service import Platform
from tests.cli.test_cli import run
from tests.documents.support import signed_version
from tests.service.test_monitor_stage import _frame, live, log_traffic
from tests.service.test_shadow_stage import _approved, _promote, _traffic
from tests.support import PASSWORD, Clock, Team

__all__ = ["live"]  # the production version with its reference profile, from the monitor tests

MODEL = "sepsis-prediction"
#: The six document kinds of ``bedside docs`` (REGULATORY §4), in the order they are written.
KINDS = ("model-card", "chai", "hti1", "pccp", "tripod-ai", "eu-ai-act")

Bedside = Callable[..., tuple[int, str, str]]


@pytest.fixture
def clock() -> Clock:
    """The clock of the setup: three weeks before now, when the commands run on real time.

    The commands run at the real time, so the state they read is built just before it: a shadow
    period of days, not months, and traffic in the newest monitoring window.
    """
    setup = Clock()
    setup.moment = datetime.now(UTC) - timedelta(days=21)
    return setup


@pytest.fixture
def bedside(
    platform: Platform,
    team: Team,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Bedside:
    """Make the platform's folder a user's project; return ``bedside(*args, user=None)``.

    The project's ``bedside.toml`` names the test database (SQLite or PostgreSQL); keys and
    artifacts are where the settings expect them (``<home>/keys``, ``<home>/artifacts``). With
    ``user``, the command gets ``--user USER --password-stdin`` and the password on stdin.
    """
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    for name in list(os.environ):
        if name.startswith("BEDSIDE_") and name != "BEDSIDE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    (tmp_path / "bedside.toml").write_text(
        f'[bedside]\ndatabase_url = "{database_url}"\nlog_level = "WARNING"\n', encoding="utf-8"
    )

    def command(*args: str, user: str | None = None) -> tuple[int, str, str]:
        argv = ["-p", str(tmp_path), *args]
        if user is None:
            result = run(monkeypatch, capsys, *argv)
        else:
            stdin = PASSWORD + "\n"
            result = run(
                monkeypatch, capsys, *argv, "--user", user, "--password-stdin", stdin=stdin
            )
        return result

    return command


def _one_line_error(code: int, out: str, err: str) -> str:
    """Assert the shape of a user mistake (exit 1, one ``Error:`` line, no traceback)."""
    assert code == 1, (out, err)
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    return err.strip()


# -- bedside docs ---------------------------------------------------------------------------------

_ISSUED = re.compile(r"^(\S+)\s+(md|html|xml)\s+(/\S+)$")
_HASH = re.compile(r"^\s+sha256 ([0-9a-f]{64}) \(ledger #(\d+)\)$")


def _issued(out: str) -> list[tuple[str, str, Path, str, int]]:
    """Parse ``bedside docs`` output: (kind, format, path, sha256, ledger seq) per file."""
    lines = out.splitlines()
    assert len(lines) % 2 == 0, out
    found = []
    for head, tail in zip(lines[::2], lines[1::2], strict=True):
        item, digest = _ISSUED.match(head), _HASH.match(tail)
        assert item is not None and digest is not None, (head, tail)
        found.append((item[1], item[2], Path(item[3]), digest[1], int(digest[2])))
    return found


def test_docs_all_writes_every_kind_and_prints_the_hashes_the_ledger_holds(
    platform: Platform, team: Team, bedside: Bedside, tmp_path: Path
) -> None:
    version = signed_version(
        platform, scientist=team.scientist, engineer=team.engineer, admin=team.admin
    )
    code, out, err = bedside("docs", version.ref, "--kind", "all", user="carol")
    assert code == 0, err
    issued = _issued(out)
    # Six kinds as Markdown and HTML, and the CHAI card as XML too: 13 files, each once.
    assert sorted((kind, fmt) for kind, fmt, *_ in issued) == sorted(
        [*((k, f) for k in KINDS for f in ("md", "html")), ("chai", "xml")]
    )
    folder = tmp_path / "documents" / MODEL / str(version.version)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for _, _, p, _, _ in issued)
    events = {
        e.seq: e
        for e in platform.list_audit_events(
            team.auditor, subject_id=version.ref, action_prefix="document."
        )
    }
    assert sorted(events) == sorted(seq for *_, seq in issued)
    for kind, fmt, path, digest, seq in issued:
        assert path.parent == folder and path.suffix == f".{fmt}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        event = events[seq]
        assert (event.action, event.actor) == ("document.issued", "carol")
        assert event.after == {"kind": kind, "format": fmt, "sha256": digest, "path": str(path)}
    xml = next(p for kind, fmt, p, _, _ in issued if fmt == "xml").read_text(encoding="utf-8")
    assert "<ModelName>sepsis-prediction</ModelName>" in xml and "Dr Carol Chief" in xml

    # Several kinds in one option (comma-separated) and another folder: only those are written.
    out_dir = tmp_path / "for-the-committee"
    code, out, err = bedside(
        "docs", version.ref, "--kind", "pccp, hti1", "--out", str(out_dir), user="aud"
    )
    assert code == 0, err
    again = _issued(out)
    assert sorted((kind, fmt) for kind, fmt, *_ in again) == [
        ("hti1", "html"),
        ("hti1", "md"),
        ("pccp", "html"),
        ("pccp", "md"),
    ]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for _, _, p, _, _ in again)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == d for _, _, p, d, _ in again)


def test_docs_refuses_an_unknown_kind_before_asking_for_a_password(
    platform: Platform, team: Team, bedside: Bedside, tmp_path: Path
) -> None:
    # No --password-stdin and no terminal: had the command asked for a password, it would say so.
    code, out, err = bedside("docs", f"{MODEL}@1", "--kind", "hti2")
    message = _one_line_error(code, out, err)
    assert "'hti2'" in message
    assert f"Valid kinds: {', '.join(KINDS)}, all." in message
    code, out, err = bedside("docs", f"{MODEL}@1", "--kind", "hti1,model-cards", user="carol")
    assert "'model-cards'" in _one_line_error(code, out, err)
    # A known kind of a version that does not exist: one line too.
    code, out, err = bedside("docs", f"{MODEL}@7", "--kind", "hti1", user="carol")
    assert f"{MODEL} has no version 7" in _one_line_error(code, out, err)
    assert not (tmp_path / "documents").exists()
    assert platform.list_audit_events(team.auditor, action_prefix="document.") == []


# -- bedside version shadow-report ----------------------------------------------------------------

_OUTCOME = re.compile(r"^  (pass|fail|not evaluated)\s+(\S.*)$")


def test_shadow_report_prints_the_verdict_its_criteria_and_the_report_files(
    platform: Platform, team: Team, clock: Clock, bedside: Bedside, tmp_path: Path
) -> None:
    first = _approved(platform, team, threshold=0.5)
    _promote(platform, team, clock, first)
    second = _approved(platform, team, threshold=0.5)
    platform.transition(team.engineer, second, Action.DEPLOY_SHADOW)
    clock.advance(days=3)
    _traffic(platform, n=150, production="1", shadow="2", labelled=80)

    code, out, err = bedside("version", "shadow-report", second, user="ivan")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{second}: shadow report PASSED (150 requests scored by the shadow)"
    outcomes = [m.groups() for m in map(_OUTCOME.match, lines[1:]) if m is not None]
    assert [status for status, _ in outcomes] == ["pass", "pass", "pass"], out
    assert any("error rate at most 1%" in rule for _, rule in outcomes)
    html, data, prefix = _report_paths(lines)
    assert html.parent == data.parent
    assert data.parent.parent == tmp_path / "reports" / "shadow" / MODEL / "2"
    recorded = platform.get_version(second).evidence["shadow_report"]
    assert recorded["passed"] is True and recorded["sha256"].startswith(prefix)
    assert hashlib.sha256(data.read_bytes()).hexdigest() == recorded["sha256"]
    assert json.loads(data.read_bytes())["version"] == second

    # Five shadow errors in 155 attempts break the 1 % criterion: the next report says FAILED.
    _traffic(platform, n=0, production="1", shadow="2", errors=5, seed=9)
    code, out, err = bedside("version", "shadow-report", second, user="eli")
    assert code == 0, err  # the report was written; its verdict is in the output and the record
    lines = out.splitlines()
    assert lines[0] == f"{second}: shadow report FAILED (150 requests scored by the shadow)"
    outcomes = [m.groups() for m in map(_OUTCOME.match, lines[1:]) if m is not None]
    assert len(outcomes) == 3
    assert [rule for status, rule in outcomes if status == "fail"] == [
        next(rule for _, rule in outcomes if "error rate" in rule)
    ]
    _html_again, data_again, _ = _report_paths(lines)
    assert data_again != data and data.exists()  # each report is kept
    assert platform.get_version(second).evidence["shadow_report"]["passed"] is False
    events = platform.list_audit_events(team.auditor, action_prefix="version.shadow_report")
    assert [(e.actor, (e.after or {})["passed"]) for e in events] == [
        ("ivan", True),
        ("eli", False),
    ]


def _report_paths(lines: list[str]) -> tuple[Path, Path, str]:
    """Return the HTML report, the JSON data and the printed sha256 prefix; check they exist."""
    html = next(line for line in lines if line.startswith("  report: "))
    data = next(line for line in lines if line.startswith("  data:   "))
    found = re.fullmatch(r"  data:   (/\S+) \(sha256 ([0-9a-f]{16})…\)", data)
    assert found is not None, data
    html_path, data_path = Path(html.removeprefix("  report: ")), Path(found[1])
    assert html_path.suffix == ".html" and html_path.is_file()
    assert data_path.suffix == ".json" and data_path.is_file()
    return html_path, data_path, found[2]


def test_shadow_report_of_a_version_not_in_shadow_is_a_one_line_error(
    platform: Platform, team: Team, bedside: Bedside, tmp_path: Path
) -> None:
    ref = _approved(platform, team, threshold=0.5)
    code, out, err = bedside("version", "shadow-report", ref, user="eli")
    message = _one_line_error(code, out, err)
    assert f"{ref} is 'approved'" in message and "'shadow'" in message
    code, out, err = bedside("version", "shadow-report", f"{MODEL}@9", user="eli")
    assert f"{MODEL} has no version 9" in _one_line_error(code, out, err)
    assert "shadow_report" not in platform.get_version(ref).evidence
    assert not (tmp_path / "reports").exists()
    refused = platform.list_audit_events(team.auditor, action_prefix="refused.shadow_report")
    assert [e.subject_id for e in refused] == [ref]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a message, not storage
def test_shadow_report_error_names_a_command_that_exists(
    platform: Platform, team: Team, bedside: Bedside
) -> None:
    ref = _approved(platform, team, threshold=0.5)
    message = _one_line_error(*bedside("version", "shadow-report", ref, user="eli"))
    assert "bedside version deploy-shadow" in message


# -- bedside monitor ------------------------------------------------------------------------------

_SUMMARY = re.compile(
    r"^(\S+): ([\d,]+) predictions \(([\d,]+) with outcomes\) in (\d+) time bucket\(s\); "
    r"newest bucket ([\d,]+) predictions, drift_score (\d\.\d\d)( — dataset drift)?$"
)


def _monitor_output(out: str) -> tuple[re.Match[str], Path, dict[str, object]]:
    """Parse the first line and the report path of ``bedside monitor``; read the report data."""
    lines = out.splitlines()
    summary = _SUMMARY.match(lines[0])
    assert summary is not None, out
    report = Path(next(line for line in lines if line.startswith("  report: ")).split(": ", 1)[1])
    assert report.name == "monitoring.html" and report.is_file()
    data: dict[str, object] = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    return summary, report, data


def test_monitor_without_an_alert_prints_the_buckets_and_exits_0(
    platform: Platform, team: Team, live: ModelVersion, bedside: Bedside, tmp_path: Path
) -> None:
    rng, now, day = np.random.default_rng(2), time.time(), 86400.0
    # Three weeks of traffic from the reference population: with two windows (7 days) of data,
    # each bucket is one window; the newest holds 800 predictions, enough for a stable drift
    # estimate (at 200 rows, MIN_ROWS_PER_BUCKET, the reference population itself often "drifts").
    log_traffic(platform, _frame(rng, 150), start=now - 20 * day, spacing=day / 15)
    log_traffic(platform, _frame(rng, 800), start=now - 900)
    code, out, err = bedside("monitor", MODEL, user="eli")
    assert code == 0, (out, err)
    summary, report, data = _monitor_output(out)
    assert summary[1] == live.ref and int(summary[2]) == 950 and summary[3] == "0"
    buckets = data["buckets"]
    assert isinstance(buckets, list) and int(summary[4]) == len(buckets) == 3
    assert sum(b["n"] for b in buckets) == 950
    assert int(summary[5]) == buckets[-1]["n"] == 800
    assert float(summary[6]) == pytest.approx(buckets[-1]["drift"]["drift_score"], abs=0.005)
    assert float(summary[6]) <= 0.3 and summary[7] is None
    assert "ALERT" not in out and "retraining_trigger fired" not in out
    events = platform.list_audit_events(team.auditor, subject_id=MODEL)
    assert [e.actor for e in events if e.action == "monitoring.checked"] == ["eli"]
    assert not [e for e in events if e.action == "monitoring.alert"]
    assert report.parent.parent == tmp_path / "reports" / "monitoring" / MODEL


def test_monitor_exits_5_while_an_alert_is_active(
    platform: Platform, team: Team, live: ModelVersion, bedside: Bedside
) -> None:
    rng = np.random.default_rng(4)
    start = time.time() - 600
    # 600 ordinary predictions, then 600 of a shifted population whose outcomes the score does
    # not predict: the newest bucket drifts and its AUROC is below the 0.80 alert threshold.
    log_traffic(platform, _frame(rng, 600), start=start, spacing=0.5)
    log_traffic(
        platform,
        _frame(rng, 600, shift=1.5),
        start=start + 300,
        spacing=0.5,
        labels=rng.integers(0, 2, 600),
    )
    code, out, err = bedside("monitor", MODEL, user="eli")
    assert code == 5, (out, err)
    summary, _, data = _monitor_output(out)
    assert summary.groups()[:5] == (live.ref, "1,200", "600", "2", "600")
    assert float(summary[6]) > 0.3 and summary[7] == " — dataset drift"
    buckets = data["buckets"]
    assert isinstance(buckets, list) and buckets[0]["performance"]["n"] == 0  # no outcomes
    assert float(summary[6]) == pytest.approx(buckets[-1]["drift"]["drift_score"], abs=0.005)
    perf = re.search(
        r"^  auroc (\d\.\d{3}) \(95% CI (\d\.\d{3})–(\d\.\d{3})\); alert below 0\.8$", out, re.M
    )
    assert perf is not None, out
    assert float(perf[2]) <= float(perf[1]) <= float(perf[3]) and float(perf[1]) < 0.8
    sent = re.findall(r"^  ALERT (\S+): ", out, re.M)
    assert sorted(sent) == ["dataset_drift", "performance", "retraining_trigger"]
    assert "retraining_trigger fired: train a new candidate" in out
    alerts = [
        (e.after or {})["kind"]
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action == "monitoring.alert"
    ]
    assert sorted(alerts) == sorted(sent)

    # Checked again: the alerts are still active, so they are not sent again, and it exits 5.
    code, out, err = bedside("monitor", MODEL, user="eli")
    assert code == 5, (out, err)
    assert "ALERT" not in out
    still = re.findall(r"^  still active, not sent again: (\S+)$", out, re.M)
    assert sorted(still) == sorted(sent)
    kinds = [
        e.action
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action.startswith("monitoring.")
    ]
    assert kinds.count("monitoring.checked") == 2 and kinds.count("monitoring.alert") == 3
    assert platform.get_version(live.ref).state.value == "production"  # an alert deploys nothing


# -- the command line's own resources ------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite does not warn
def test_the_cli_closes_the_connections_it_opens(
    platform: Platform,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("BEDSIDE_") and name != "BEDSIDE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    (tmp_path / "bedside.toml").write_text(
        f'[bedside]\ndatabase_url = "{database_url}"\n', encoding="utf-8"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        code, _, err = run(monkeypatch, capsys, "-p", str(tmp_path), "status")
        gc.collect()
    assert code == 0, err
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
