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


def _env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "HOME": str(PROJECT),
        "COLUMNS": "120",
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
    # Serving: the real server on 127.0.0.1; promotions hot-swap the served model.
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
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
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=(PROJECT / "server.log").open("wb"),
    )
    try:
        _wait_ready(url, server)
        print(f"\nPrediction server running at {url} (pid {server.pid}); shadow period 20 s …")
        time.sleep(21)
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
            "Shadow period reviewed",
            "--password-stdin",
            password=True,
        )
        bedside("version", "promote", ref, "--user", "eli", "--password-stdin", password=True)
        time.sleep(4)  # the server re-reads the registry every 2 s and swaps the model in
        _traffic(url, seconds=15, shift=1.0)
        print("\n… and now the drift scenario begins (every numeric feature reads 1.5x):")
        _traffic(url, seconds=15, shift=1.5)
        bedside(
            "monitor",
            "sepsis-prediction",
            "--user",
            "eli",
            "--password-stdin",
            password=True,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
    # The trigger fired: a retrained candidate must pass the same gates and signatures.
    bedside(
        "train", str(PROJECT / "pipeline.yaml"), "--user", "dana", "--password-stdin", password=True
    )
    bedside("history", "sepsis-prediction", "--user", "aud", "--password-stdin", password=True)
    bedside("status")
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
    print(f"\nDemo finished. Project: {PROJECT}")


if __name__ == "__main__":
    main()
