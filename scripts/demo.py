"""`make demo`: run bedside's governed pipeline on the embedded defaults, end to end, via the CLI.

Everything happens in ./demo-project (recreated on every run): SQLite governance database, local
folders, synthetic (seeded) data. The passwords below belong to synthetic demo users only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "demo-project"
PIPELINE = REPO / "examples" / "sepsis" / "pipeline.demo.yaml"
DEMO_PASSWORD = "demo-only-password-42"  # synthetic demo users; never use in a real project

TEAM = [
    ("dana", "Dana Scientist", "data_scientist"),
    ("eli", "Eli Engineer", "ml_engineer"),
    ("carol", "Dr Carol Chief", "CMIO"),
    ("ivan", "Ivan Informaticist", "clinical_informaticist"),
    ("aud", "Audrey Auditor", "auditor"),
]


def bedside(*args: str, password: bool = False, check: bool = True) -> str:
    """Run one bedside command as a user would, echo it, and return its output."""
    shown = " ".join(args)
    print(f"\n$ bedside {shown}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "bedside", "--project", str(PROJECT), *args],
        input=(DEMO_PASSWORD + "\n") if password else None,
        text=True,
        capture_output=True,
        cwd=REPO,
        env=_env(),
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"demo step failed (exit {result.returncode}): bedside {shown}")
    return result.stdout


# Where monitoring alerts go (the demo's stand-in receiver, while it runs).
ALERT_WEBHOOK: dict[str, str] = {}


def _env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "HOME": str(PROJECT),
        "COLUMNS": "120",
        **ALERT_WEBHOOK,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the prediction server exited; see {PROJECT / 'server.log'}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the prediction server did not start in time")


def _traffic(url: str, *, seconds: float, shift: float) -> None:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "demo_traffic.py"),
            str(PROJECT),
            url,
            "--seconds",
            str(seconds),
            "--shift",
            str(shift),
        ],
        check=True,
        env=_env(),
    )


class AlertReceiver:
    """A stand-in for the hospital's paging/alerting endpoint: records the webhook alerts."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.received: list[dict[str, object]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    received.append(json.loads(body))
                except ValueError:
                    received.append({"unreadable": True})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> AlertReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _print_reports() -> None:
    """Say where every report and document of the run is."""
    print("\nReports and documents of this run:")
    kinds = [
        ("data quality", "work/**/reports/*.html"),
        ("validation", "artifacts/**/validation*.html"),
        ("shadow period", "reports/shadow/**/*.html"),
        ("monitoring", "reports/monitoring/**/*.html"),
        ("regulatory documents", "documents/**/*.html"),
        ("audit export", "audit-export/*"),
    ]
    for label, pattern in kinds:
        found = sorted(PROJECT.glob(pattern))
        print(f"  {label}:")
        for path in found or []:
            print(f"    {path}")
        if not found:
            print("    (none)")


def main() -> None:
    if PROJECT.exists():
        shutil.rmtree(PROJECT)
    print("bedside demo — the governed pipeline on embedded defaults (SQLite, local folders)")
    bedside("check", str(PIPELINE))
    PROJECT.mkdir()
    # The pipeline file lives in the project; its source path (data/fhir) is relative to it.
    shutil.copy(PIPELINE, PROJECT / "pipeline.yaml")
    bedside(
        "init",
        str(PROJECT),
        "--admin",
        "admin",
        "--admin-name",
        "Ada Admin",
        "--pipeline",
        str(PIPELINE),
        "--password-stdin",
        password=True,
    )
    pw_file = PROJECT / ".demo-password"
    pw_file.write_text(DEMO_PASSWORD + "\n", encoding="utf-8")
    pw_file.chmod(0o600)
    for username, full_name, role in TEAM:
        bedside(
            "user",
            "add",
            username,
            "--full-name",
            full_name,
            "--role",
            role,
            "--new-password-file",
            str(pw_file),
            "--user",
            "admin",
            "--password-stdin",
            password=True,
        )
    pw_file.unlink()
    bedside("user", "list", "--user", "admin", "--password-stdin", password=True)
    bedside("status")
    # Clinical data in: a synthetic hospital as a FHIR bulk export (synthetic PHI included), then
    # the data preparation stage: ingest, features, split, quality, de-identification, PHI scan,
    # encrypted snapshot.
    bedside("demo-data", str(PROJECT / "data" / "fhir"), "--admissions", "8000", "--seed", "7")
    bedside(
        "prepare",
        str(PROJECT / "pipeline.yaml"),
        "--user",
        "dana",
        "--password-stdin",
        password=True,
    )
    # Training and validation: an MLflow run with lineage, evaluation with CIs, every gate judged.
    bedside(
        "train", str(PROJECT / "pipeline.yaml"), "--user", "dana", "--password-stdin", password=True
    )
    ref = "sepsis-prediction@1"
    bedside("validate", ref, "--user", "eli", "--password-stdin", password=True)
    bedside("review", ref)
    # The operating threshold is a clinical decision, set at review before anyone signs.
    bedside(
        "review", ref, "--threshold", "0.08", "--user", "ivan", "--password-stdin", password=True
    )
    bedside("reproduce", ref, "--user", "dana", "--password-stdin", password=True)
    # Clinical review: two e-signatures (CMIO and clinical informaticist), password re-entered.
    bedside(
        "sign",
        ref,
        "--meaning",
        "approved",
        "--user",
        "carol",
        "--comment",
        "Reviewed the evidence and the threshold table",
        "--password-stdin",
        password=True,
    )
    bedside(
        "sign", ref, "--meaning", "approved", "--user", "ivan", "--password-stdin", password=True
    )
    bedside("version", "deploy-shadow", ref, "--user", "eli", "--password-stdin", password=True)
    # Serving: the real server on 127.0.0.1. With no production version yet, the shadow scores
    # every request silently (logged, never returned); promotions hot-swap the served model, and
    # the server runs monitoring on a schedule (every 10 s here; drift_check_interval in real use).
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    alerts = AlertReceiver().start()
    ALERT_WEBHOOK["BEDSIDE_ALERT_WEBHOOK_URL"] = alerts.url
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside",
            "--project",
            str(PROJECT),
            "serve",
            "--port",
            str(port),
            "--refresh",
            "2",
            "--monitor-interval",
            "10",
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=(PROJECT / "server.log").open("wb"),
    )
    try:
        _wait_ready(url, server)
        print(
            f"\nPrediction server and governance dashboard at {url} (dashboard: {url}/ui/, "
            f"API docs: {url}/docs; pid {server.pid})."
        )
        print("Shadow period (20 s here): simulated EHR traffic, scored by the shadow alone …")
        _traffic(url, seconds=22, shift=1.0)
        # The shadow report is the evidence the promotion signature binds to.
        bedside("version", "shadow-report", ref, "--user", "eli", "--password-stdin", password=True)
        bedside(
            "sign",
            ref,
            "--meaning",
            "approved",
            "--purpose",
            "promotion",
            "--user",
            "carol",
            "--comment",
            "Shadow report reviewed",
            "--password-stdin",
            password=True,
        )
        bedside("version", "promote", ref, "--user", "eli", "--password-stdin", password=True)
        time.sleep(4)  # the server re-reads the registry every 2 s and swaps the model in
        _traffic(url, seconds=15, shift=1.0)
        print("\n… and now the drift scenario begins (every numeric feature reads 1.5x):")
        _traffic(url, seconds=15, shift=1.5)
        # Monitoring (the server also runs it every 10 s here): the alert is raised, the
        # retraining trigger fires, and --retrain prepares fresh data and trains a candidate,
        # which waits for the same gates and signatures.
        bedside(
            "monitor",
            "sepsis-prediction",
            "--retrain",
            str(PROJECT / "pipeline.yaml"),
            "--user",
            "dana",
            "--password-stdin",
            password=True,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
        alerts.stop()
        ALERT_WEBHOOK.clear()
    print(f"\nAlert webhook ({alerts.url}) received {len(alerts.received)} alert(s):")
    for alert in alerts.received:
        print("  " + ", ".join(f"{k}={alert[k]}" for k in sorted(alert) if k != "message"))
    # Regulatory documents for the production version, generated from its record.
    bedside("docs", ref, "--kind", "all", "--user", "aud", "--password-stdin", password=True)
    bedside("history", "sepsis-prediction", "--user", "aud", "--password-stdin", password=True)
    bedside("audit", "checkpoint", "--user", "aud", "--password-stdin", password=True)
    bedside("audit", "verify")
    bedside(
        "audit",
        "export",
        str(PROJECT / "audit-export"),
        "--user",
        "aud",
        "--password-stdin",
        password=True,
    )
    _print_reports()
    bedside("status")
    print(f"\nDemo finished. Project: {PROJECT}")


if __name__ == "__main__":
    main()
