"""The bedside CLI, run in-process through its real entry point (and once as a subprocess)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bedside.cli import app, invoke
from bedside.cli_docs import render_cli_reference
from tests.support import FOUNDING_PIPELINE, PASSWORD, REPO


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    home = tmp_path / "hospital"
    monkeypatch.delenv("BEDSIDE_TOKEN", raising=False)
    monkeypatch.delenv("BEDSIDE_DATABASE_URL", raising=False)
    code, out, err = run(
        monkeypatch,
        capsys,
        "init",
        str(home),
        "--admin",
        "admin",
        "--admin-name",
        "Ada Admin",
        "--pipeline",
        str(FOUNDING_PIPELINE),
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    assert "Created bedside project" in out
    pw = home / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    for name, full, role in [
        ("carol", "Dr Carol Chief", "CMIO"),
        ("aud", "Audrey Auditor", "auditor"),
    ]:
        code, out, err = run(
            monkeypatch,
            capsys,
            "-p",
            str(home),
            "user",
            "add",
            name,
            "--full-name",
            full,
            "--role",
            role,
            "--new-password-file",
            str(pw),
            "--user",
            "admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        assert code == 0, err
    return home


def test_init_creates_config_database_and_private_keys(project: Path) -> None:
    assert (project / "bedside.toml").exists()
    assert (project / "bedside.db").exists()
    keys = project / "keys"
    assert (keys / "signing.key").stat().st_mode & 0o077 == 0
    assert keys.stat().st_mode & 0o077 == 0


def test_user_list_shows_roles(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "user",
        "list",
        "--user",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0
    assert "carol" in out and "CMIO" in out and "auditor" in out


def test_status_lists_the_registered_model(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "-p", str(project), "status")
    assert code == 0
    assert "sepsis-prediction" in out and "production: none" in out


def test_wrong_password_is_one_line_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "user",
        "list",
        "--user",
        "admin",
        "--password-stdin",
        stdin="nope nope nope\n",
    )
    assert code == 1
    assert err.startswith("Error: Authentication failed") and err.count("\n") == 1
    assert "Traceback" not in err


def test_debug_shows_the_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bedside.errors import AuthenticationFailed

    monkeypatch.setattr(sys, "stdin", io.StringIO("nope nope nope\n"))
    with pytest.raises(AuthenticationFailed):
        invoke(
            ["--debug", "-p", str(project), "user", "list", "--user", "admin", "--password-stdin"]
        )


def test_not_a_project_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BEDSIDE_DATABASE_URL", raising=False)
    code, _, err = run(monkeypatch, capsys, "-p", str(tmp_path), "status")
    assert code == 1 and "is not a bedside project" in err and "bedside init" in err


def test_audit_verify_export_and_checkpoint(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "audit",
        "checkpoint",
        "--user",
        "aud",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0
    seq, digest = out.strip().split(":")
    code, out, _ = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "audit",
        "verify",
        "--checkpoint",
        f"{seq}:{digest}",
    )
    assert code == 0 and "ledger intact" in out
    code, out, _ = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "audit",
        "export",
        str(project / "export"),
        "--user",
        "aud",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0
    lines = (project / "export" / "audit-ledger.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {"user.created", "role.granted", "pipeline.registered"} <= {e["action"] for e in events}
    csv_lines = (project / "export" / "audit-ledger.csv").read_text().splitlines()
    assert csv_lines[0].startswith("seq,occurred_at,actor,action")
    assert len(csv_lines) == len(events) + 1


def test_audit_verify_reports_the_first_broken_link(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine(f"sqlite:///{project / 'bedside.db'}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5"))
    engine.dispose()
    code, _, err = run(monkeypatch, capsys, "-p", str(project), "audit", "verify")
    assert code == 3
    assert "BROKEN at event #5" in err and "edited" in err


def test_sign_refusal_is_reported_and_recorded(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "sign",
        "sepsis-prediction@1",
        "--meaning",
        "approved",
        "--user",
        "carol",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 1 and "no version 1" in err


def test_check_accepts_the_founding_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "check", str(FOUNDING_PIPELINE))
    assert code == 0 and "valid" in out


def test_check_prints_each_problem_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        FOUNDING_PIPELINE.read_text().replace("auto_promote: false", "auto_promot: false")
    )
    code, _, err = run(monkeypatch, capsys, "check", str(bad))
    assert code == 1
    assert f"{bad}:" in err and "auto_promot" in err and "auto_promote" in err
    assert err.strip().splitlines()[-1].startswith("Error:")


def test_check_of_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(monkeypatch, capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 1 and "nope.yaml" in err and "Traceback" not in err


def test_cli_reference_is_in_sync_with_help() -> None:
    on_disk = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert render_cli_reference(app) == on_disk, (
        "docs/cli.md is out of date. HOW TO FIX: run 'make docs' and commit docs/cli.md."
    )


def test_python_dash_m_bedside_runs_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bedside", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("bedside ")


def test_demo_data_then_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export"
    code, out, err = run(
        monkeypatch, capsys, "demo-data", str(export), "--admissions", "120", "--seed", "3"
    )
    assert code == 0, err
    assert "Encounter 120" in out
    code, out, err = run(
        monkeypatch, capsys, "ingest", str(export), "--dest", str(tmp_path / "raw")
    )
    assert code == 0, err
    assert "Encounter.ndjson: read 120 = accepted 120 + quarantined 0" in out
    report = json.loads((tmp_path / "raw" / "ingest-report.json").read_text())
    assert report["files"]


def test_demo_data_rejects_a_bad_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        monkeypatch, capsys, "demo-data", str(tmp_path / "x"), "--start", "2024-13-01"
    )
    assert code == 1 and "--start '2024-13-01' is not a date" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["user", "add"], "Missing argument"),
        (["--bogus"], "No such option: --bogus"),
        (["sign", "m@1", "--meaning", "maybe"], "Invalid value for '--meaning'"),
    ],
)
def test_usage_errors_show_usage_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert message in err and "Usage:" in err and "Traceback" not in err


def test_cli_reference_documents_every_subcommand() -> None:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in (
        "bedside user add",
        "bedside audit verify",
        "bedside audit export",
        "bedside init",
        "bedside check",
        "bedside status",
        "bedside sign",
    ):
        assert f"`{command}`" in text


def test_check_imports_the_estimator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    full = REPO / "examples" / "sepsis" / "pipeline.full.yaml"
    bad = tmp_path / "p.yaml"
    bad.write_text(
        full.read_text().replace(
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "sklearn.ensemble.HistGradientBoostingClasifier",
        )
    )
    code, _, err = run(monkeypatch, capsys, "check", str(bad))
    assert code == 1 and "training.model.estimator" in err and "has no" in err


def test_rollback_without_production_says_so(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "user",
        "grant",
        "carol",
        "ml_engineer",
        "--user",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    code, _, err = run(
        monkeypatch,
        capsys,
        "-p",
        str(project),
        "rollback",
        "sepsis-prediction",
        "--reason",
        "alerts doubled",
        "--user",
        "carol",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 1 and "no production version to roll back from" in err
